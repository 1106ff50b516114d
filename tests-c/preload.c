/*
 * The preload shim (preload/preload.c) as a program linked with it sees it: the library is
 * mapped at the first call and not before, its answers and errors pass through unchanged,
 * threads racing the first call, a library that cannot be loaded (every call fails, nothing
 * printed; with libvirt in the process, libvirt's error), and a process that preloads the
 * shim and never calls it maps nothing else.
 *
 * This program is linked with the shim, not the library; meson's LD_LIBRARY_PATH lets the
 * shim find the library by its SONAME in the build directory.
 */
#define _GNU_SOURCE

#include "harness.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <virnodesuspend.h>

#define LIBRARY "libvirnodesuspend.so.0"
#define ALL_TARGETS ((1u << VIR_NODE_SUSPEND_TARGET_MEM) | (1u << VIR_NODE_SUSPEND_TARGET_DISK) | \
                     (1u << VIR_NODE_SUSPEND_TARGET_HYBRID))
/* The argument that makes this program a child run without a loadable library. */
#define UNLOADABLE "--unloadable"

static const char *program;
static bool with_libvirt;

/* Whether any mapping of this process (or `pid`'s) has `name` in its path; the whole path
 * of the first one in `path` when it is not NULL. */
static bool maps_in(pid_t pid, const char *name, char *path, size_t size)
{
    char file[64], line[4096];
    bool found = false;
    snprintf(file, sizeof(file), "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(file, "r");
    CHECK(maps != NULL);
    while (!found && fgets(line, sizeof(line), maps)) {
        const char *at = strchr(line, '/');
        found = at != NULL && strstr(at, name) != NULL;
        if (found && path != NULL)
            snprintf(path, size, "%.*s", (int)strcspn(at, "\n"), at);
    }
    fclose(maps);
    return found;
}

static bool maps(const char *name)
{
    return maps_in(getpid(), name, NULL, 0);
}

/* The library the shim loaded (NULL before): RTLD_NOLOAD never loads it. */
static void *loaded_library(void)
{
    return dlopen(LIBRARY, RTLD_NOW | RTLD_NOLOAD);
}

/* dlsym of the loaded library, as a function pointer (see preload/preload.c). */
static void library_function(const char *name, void *function, size_t size)
{
    void *library = loaded_library();
    CHECK(library != NULL);
    void *address = dlsym(library, name);
    CHECK(address != NULL);
    memcpy(function, &address, size);
    dlclose(library);
}

/* The shim has no error API: CHECK_ERROR (harness-runner.c) reads the library's, through
 * these, straight from the library the shim loaded. */
const virNodeSuspendError *virNodeSuspendGetLastError(void)
{
    const virNodeSuspendError *(*function)(void);
    library_function(__func__, &function, sizeof(function));
    return function();
}

int virNodeSuspendGetLastErrorCode(void)
{
    int (*function)(void);
    library_function(__func__, &function, sizeof(function));
    return function();
}

const char *virNodeSuspendGetLastErrorMessage(void)
{
    const char *(*function)(void);
    library_function(__func__, &function, sizeof(function));
    return function();
}

static void the_library_is_mapped_at_the_first_call_and_not_before(void)
{
    root_host();
    use_fake_root("10");
    CHECK(maps("/preload.so"));
    CHECK(!maps("libvirnodesuspend"));
    CHECK(loaded_library() == NULL);
    unsigned int mask = 0, direct = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(maps("libvirnodesuspend"));
    int (*real_mask)(unsigned int *);
    library_function("virNodeSuspendGetTargetMask", &real_mask, sizeof(real_mask));
    CHECK(real_mask(&direct) == 0);
    CHECK(mask == direct && mask == ALL_TARGETS);
    /* The library maps no D-Bus client library: its own is built in. */
    CHECK(!maps("libdbus"));
}

static void answers_and_errors_pass_through_unchanged(void)
{
    root_host_without_swap();
    use_fake_root("10");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspend");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_DISK, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_NONE, "argument unsupported: Suspend-to-Disk");
    /* All 64 bits of the duration reach the library. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 10000000000ULL, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                "invalid argument: Suspend duration 10000000000 is too long, "
                "the RTC cannot wake the host after 2099-12-31 23:59:59 UTC");
    CHECK(virNodeSuspendGetTargetMask(NULL) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "bitmask in virNodeSuspendGetTargetMask must not be NULL");
    CHECK_STR(root_read("sys/class/rtc/rtc0/wakealarm"), "");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendGetLastErrorCode() == 0);
    CHECK_STR(root_read("sys/class/rtc/rtc0/wakealarm"), fake_host_alarm(60));
}

#define RACERS 16

struct racer {
    bool asks_mask;
    int ret;
    unsigned int mask;
};

static void race_for_the_first_call(void *arg)
{
    struct racer *racer = arg;
    racer->ret = racer->asks_mask ? virNodeSuspendGetTargetMask(&racer->mask)
                                  : virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0);
}

/* Half of the threads ask for the mask, half for a suspend, all at once and first: every
 * one reaches the library, which takes exactly one request. */
static void threads_racing_the_first_call_all_reach_the_library(void)
{
    root_host_without_swap();
    use_fake_root("3600");
    struct racer racers[RACERS];
    int accepted = 0;
    for (int i = 0; i < RACERS; i++)
        racers[i] = (struct racer){.asks_mask = i % 2 == 0};
    harness_race(race_for_the_first_call, racers, sizeof(racers[0]), RACERS);
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].asks_mask)
            CHECK(racers[i].ret == 0 && racers[i].mask == 1u << VIR_NODE_SUSPEND_TARGET_MEM);
        else
            accepted += racers[i].ret == 0;
    }
    CHECK(accepted == 1);
    CHECK_STR(root_read("sys/class/rtc/rtc0/wakealarm"), "1800003651");
}

/* This program again, in a child whose loader finds a libvirnodesuspend.so.0 that is no
 * library first on its path (the library may be installed on this machine too), with its
 * output in a file; returns that output. `argument` selects what the child checks. */
static const char *run_unloadable(const char *argument)
{
    static char output[4096];
    root_write("lib/" LIBRARY, "");
    const char *output_path = root_path("output");
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        if (freopen(output_path, "w", stdout) == NULL || dup2(fileno(stdout), 2) < 0 ||
            setenv("LD_LIBRARY_PATH", root_path("lib"), 1) < 0)
            _exit(125);
        execl(program, program, UNLOADABLE, argument, (char *)NULL);
        _exit(126);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    snprintf(output, sizeof(output), "%s", root_read("output"));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("# the child (status 0x%x) said:\n%s", status, output);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return output;
}

static void a_library_that_cannot_be_loaded_fails_every_call_silently(void)
{
    CHECK_STR(run_unloadable("alone"), "");
}

/* In the child: each call fails, again and again, without the library. */
static void calls_fail(void)
{
    for (int i = 0; i < 2; i++) {
        unsigned int mask = 0xdead;
        CHECK(virNodeSuspendGetTargetMask(&mask) == -1);
        CHECK(mask == 0);
        CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == -1);
    }
    CHECK(!maps("libvirnodesuspend"));
}

static void with_libvirt_a_library_that_cannot_be_loaded_is_libvirts_error(void)
{
    /* libvirt keeps the error for virGetLastError and logs nowhere by default. */
    CHECK_STR(run_unloadable("with-libvirt"), "");
}

/* In the child: libvirt's virGetLastError has the error, in libvirt's words for an
 * internal error, naming why the loader refused. */
static void calls_fail_with_libvirts_error(void)
{
    void *libvirt = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL);
    CHECK(libvirt != NULL);
    calls_fail();
    const virNodeSuspendError *(*get_last_error)(void);
    void *address = dlsym(libvirt, "virGetLastError");
    CHECK(address != NULL);
    memcpy(&get_last_error, &address, sizeof(get_last_error));
    /* virNodeSuspendError has virError's layout (the with-libvirt harness checks it). */
    const virNodeSuspendError *error = get_last_error();
    CHECK(error != NULL);
    CHECK(error->code == VIR_ERR_INTERNAL_ERROR && error->domain == VIR_FROM_NONE && error->level == VIR_ERR_ERROR);
    char expected[512];
    snprintf(expected, sizeof(expected),
             "internal error: cannot load the node-suspend library: %s/" LIBRARY ": file too short",
             getenv("LD_LIBRARY_PATH"));
    CHECK_STR(error->message, expected);
}

static pid_t sleeper;

static bool sleeper_sleeps(void)
{
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/syscall", (int)sleeper);
    FILE *syscall = fopen(file, "r");
    int number = -1;
    if (syscall != NULL) {
        if (fscanf(syscall, "%d", &number) != 1)
            number = -1;
        fclose(syscall);
    }
    return number == 230 /* clock_nanosleep */ || number == 35 /* nanosleep */;
}

/* Every file a /bin/sleep that has got to its sleep maps, one per line, with `preload` in
 * its LD_PRELOAD (or none). */
static void files_of_a_sleeper(const char *preload, char *files, size_t size)
{
    sleeper = fork();
    CHECK(sleeper >= 0);
    if (sleeper == 0) {
        if (preload ? setenv("LD_PRELOAD", preload, 1) : unsetenv("LD_PRELOAD"))
            _exit(125);
        execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(126);
    }
    WAIT_FOR(sleeper_sleeps);
    char file[64], line[4096];
    snprintf(file, sizeof(file), "/proc/%d/maps", (int)sleeper);
    FILE *maps = fopen(file, "r");
    CHECK(maps != NULL);
    files[0] = '\0';
    while (fgets(line, sizeof(line), maps)) {
        const char *path = strchr(line, '/');
        if (path != NULL && strstr(files, path) == NULL)
            strncat(files, path, size - strlen(files) - 1);
    }
    fclose(maps);
    kill(sleeper, SIGKILL);
    CHECK(waitpid(sleeper, NULL, 0) == sleeper);
}

/* Whether every line of `lines` is in `others`. */
static bool lines_in(const char *lines, const char *others)
{
    for (const char *line = lines; *line; line = strchr(line, '\n') + 1) {
        char one[4096];
        snprintf(one, sizeof(one), "%.*s", (int)(strchr(line, '\n') + 1 - line), line);
        if (strstr(others, one) == NULL)
            return false;
    }
    return true;
}

/* As every QEMU and helper of a daemon with the drop-in: the shim, and nothing it brought. */
static void a_process_that_preloads_the_shim_and_never_calls_it_maps_nothing_else(void)
{
    char shim[4096], plain[8192], preloaded[8192];
    CHECK(maps_in(getpid(), "/preload.so", shim, sizeof(shim)));
    files_of_a_sleeper(NULL, plain, sizeof(plain));
    files_of_a_sleeper(shim, preloaded, sizeof(preloaded));
    CHECK(!strstr(preloaded, "libvirnodesuspend") && !strstr(preloaded, "libdbus"));
    /* The plain process's files and the shim, no other. */
    strncat(plain, shim, sizeof(plain) - strlen(plain) - 2);
    strcat(plain, "\n");
    CHECK(lines_in(preloaded, plain) && lines_in(plain, preloaded));
}

int main(int argc, char **argv)
{
    program = argv[0];
    if (argc == 3 && strcmp(argv[1], UNLOADABLE) == 0) {
        if (strcmp(argv[2], "with-libvirt") == 0)
            calls_fail_with_libvirts_error();
        else
            calls_fail();
        return 0;
    }
    with_libvirt = argc == 2 && strcmp(argv[1], "--with-libvirt") == 0;
    static const struct harness_case cases[] = {
        {"the library is mapped at the first call and not before", the_library_is_mapped_at_the_first_call_and_not_before},
        {"answers and errors pass through unchanged", answers_and_errors_pass_through_unchanged},
        {"threads racing the first call all reach the library", threads_racing_the_first_call_all_reach_the_library},
        {"a library that cannot be loaded fails every call silently",
         a_library_that_cannot_be_loaded_fails_every_call_silently},
        {"a process that preloads the shim and never calls it maps nothing else",
         a_process_that_preloads_the_shim_and_never_calls_it_maps_nothing_else},
        {"with libvirt, a library that cannot be loaded is libvirt's error",
         with_libvirt_a_library_that_cannot_be_loaded_is_libvirts_error},
    };
    size_t count = sizeof(cases) / sizeof(cases[0]);
    /* The last case needs libvirt.so.0 (meson passes --with-libvirt where it is found). */
    return harness_main(cases, with_libvirt ? count : count - 1);
}
