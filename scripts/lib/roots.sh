# shellcheck shell=bash
# Sourced by the scripts that make fresh Debian roots with mmdebstrap and run commands
# in them (build-debs-offline, build-libvirt, fresh-debian12, test-debian,
# test-debian-offline, test-libvirt-linked): what they all do the same way. Uses the sourcing
# script's `say` and `repo`.

# A step in namespaces of its own: its mounts end with it, and its processes too (--kill-child
# ends the PID namespace, and all in it, when unshare ends: Ctrl-C or a signal to the process
# group is enough).
namespaces=(unshare --mount --pid --ipc --uts --fork --kill-child --propagation private)

# archive RELEASE (bookworm or trixie): sets mirror and security_mirror, Debian's own or the
# ones FRESH_DEBIAN12_MIRROR and FRESH_DEBIAN12_SECURITY_MIRROR (bookworm),
# FRESH_DEBIAN13_MIRROR and FRESH_DEBIAN13_SECURITY_MIRROR (trixie) name, and sources, the
# release's main, updates and security lines for mmdebstrap.
archive() {
    local release=$1 number
    case $release in
        bookworm) number=12 ;;
        trixie) number=13 ;;
        *) say "archive: no mirror variables for $release"; return 1 ;;
    esac
    local mirror_variable=FRESH_DEBIAN${number}_MIRROR
    local security_variable=FRESH_DEBIAN${number}_SECURITY_MIRROR
    mirror=${!mirror_variable:-http://deb.debian.org/debian}
    security_mirror=${!security_variable:-http://deb.debian.org/debian-security}
    # shellcheck disable=SC2034 # for the caller
    sources=("deb $mirror $release main" "deb $mirror $release-updates main"
        "deb $security_mirror $release-security main")
}

# buildd_root RELEASE NAME ROOT [PACKAGE...]: unpacks into ROOT the day's root of RELEASE
# (mmdebstrap, variant buildd, no recommends, with the PACKAGEs), kept in
# /var/cache/virnodesuspend/ as RELEASE-NAME-DATE-KEY.tar (KEY: the archive and the
# packages) and made when this machine has none of today's. Several runs may want it at
# once: one makes it, the others wait for it and take it.
buildd_root() {
    local release=$1 name=$2 into=$3
    shift 3
    local packages="$*" mirror security_mirror sources key tarball lock
    local cache=/var/cache/virnodesuspend
    archive "$release"
    key=$(echo "$release $name $mirror $security_mirror${packages:+ $packages}" | sha256sum | cut -c1-12)
    tarball="$cache/$release-$name-$(date -u +%Y%m%d)-$key.tar"
    mkdir -p "$cache"
    exec {lock}>"$cache/$release-$name.lock"
    flock "$lock"
    if [[ ! -f $tarball ]]; then
        say "mmdebstrap $release (buildd)${packages:+ with $packages} into $tarball"
        rm -f "$cache/$release-$name"-*.tar
        "${namespaces[@]}" mmdebstrap --quiet --mode=root --variant=buildd --format=tar \
            --aptopt='APT::Install-Recommends "false"' ${packages:+--include="${packages// /,}"} \
            "$release" "$tarball.tmp" "${sources[@]}"
        mv "$tarball.tmp" "$tarball"
    fi
    mkdir -p "$into"
    tar -C "$into" -xf "$tarball"
    exec {lock}>&-
}

# in_fresh_root ROOT COMMAND: runs the bash command line COMMAND as root in ROOT, in
# namespaces of its own, with the root's own /proc, /dev and /run and a read-only /sys
# (scripts/fresh-debian12 --inside).
in_fresh_root() {
    # shellcheck disable=SC2154 # the sourcing script's
    "${namespaces[@]}" "$repo/scripts/fresh-debian12" --inside "$1" "$2" \
        /usr/sbin:/usr/bin:/sbin:/bin
}

# remove_tree DIR: removes DIR, unless something is mounted at or below it: what a mount shows
# of this machine would go with it (every mount is made in a mount namespace that is gone by
# then). Then it says so and returns 1.
remove_tree() {
    if awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { found = 1 } END { exit !found }' \
        /proc/self/mountinfo; then
        say "something is still mounted below $1: left as it is"
        return 1
    fi
    rm -rf --one-file-system "$1"
}

# remove_at_exit DIR [BEFORE]: on every exit of the script (Ctrl-C and TERM too, with 130 and
# 143), runs the command BEFORE when given, then removes DIR (remove_tree) unless BEFORE
# failed. The exit status stays, or is 1 when DIR could not be removed.
remove_at_exit() {
    exit_removes=$1
    exit_runs_before=${2:-true}
    trap removing_at_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
removing_at_exit() {
    local status=$?
    if $exit_runs_before && ! remove_tree "$exit_removes" && [[ $status -eq 0 ]]; then
        status=1
    fi
    exit "$status"
}
