/*
 * The program the QEMU guest runs (scripts/qemu/init starts it): a caller of the library as
 * a libvirt driver would be, through the public header only.
 *
 *     guest TARGET...        TARGET: mem, disk or hybrid, carried out in this order
 *
 * It asks for the mask and for a wake-up the RTC cannot hold (refused by the kernel: the
 * library must say so and leave no alarm). Then, for each target, it asks for a 60 s suspend
 * with the library's default configuration (10 s delay; the first available backend, which
 * in this guest, without a system bus or pm-utils, is the kernel's /sys/power), keeps
 * running while the library's worker suspends the guest, notices its own resume and says how
 * long it slept, waits for the library to report the request over (virNodeSuspendWait), and
 * checks that it would accept a new one before going on.
 *
 * Everything it has to say is one "EVENT name key=value..." line on the console, which the
 * host side (scripts/qemu/runner.py) reads next to QEMU's own events. The lines go through
 * the kernel's log (/dev/kmsg) rather than straight to the console's tty: the kernel prints
 * its own messages (around every suspend and resume) between whatever a tty is sending, and
 * could cut a line in two; through the log each line reaches the console whole, in order
 * with the kernel's. Clocks are printed for the record; the host times everything with its
 * own clock.
 *
 * The program really suspends the machine it runs on, so it refuses to run anywhere but in
 * the guest: the guest's init sets a marker in the environment, and the root file system
 * must be the initramfs (ramfs or tmpfs), which no host this is built on runs from.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <time.h>
#include <linux/magic.h>

#include <virnodesuspend.h>

/* Set to 1 by scripts/qemu/init. */
#define GUEST_MARKER "VIRNODESUSPEND_QEMU_GUEST"

/* The shortest duration the library accepts with its default delay. */
#define DURATION_S 60

/* Two years ahead: further than any PC CMOS clock's alarm reaches (a day, a month or a year,
 * as the firmware tells the kernel) and well within its calendar. */
#define UNREACHABLE_S (2ULL * 366 * 86400)

#define WAKEALARM "/sys/class/rtc/rtc0/wakealarm"

/* libvirt's virErrorNumber for an invalid argument (virterror.h). */
enum { ERR_INVALID_ARG = 8 };

/*
 * CLOCK_BOOTTIME counts time asleep, CLOCK_MONOTONIC does not: the gap between them grows
 * by the time asleep at each resume, and by nothing else (creating a hibernation image stops
 * the clocks for a moment too, and adds that moment). A growth of 2 s or more is a resume:
 * every sleep here is far longer, that moment far shorter.
 */
#define RESUMED_GAP_GROWTH_S 2.0
#define POLL_NS 50000000L

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void poll_pause(void)
{
    struct timespec pause = {0, POLL_NS};
    nanosleep(&pause, NULL);
}

/* One EVENT line: the name, the caller's fields, the three clocks. */
static void event(const char *name, const char *fields)
{
    printf("EVENT %s %s mono=%.3f boot=%.3f real=%.3f\n", name, fields,
           clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_BOOTTIME), clock_s(CLOCK_REALTIME));
}

static int fail(const char *what)
{
    char fields[512];
    snprintf(fields, sizeof fields, "what=%s code=%d message=\"%s\"", what,
             virNodeSuspendGetLastErrorCode(), virNodeSuspendGetLastErrorMessage());
    event("error", fields);
    return EXIT_FAILURE;
}

static int in_qemu_guest(void)
{
    const char *marker = getenv(GUEST_MARKER);
    struct statfs root;
    if (marker == NULL || strcmp(marker, "1") != 0 || statfs("/", &root) != 0)
        return 0;
    return root.f_type == RAMFS_MAGIC || root.f_type == TMPFS_MAGIC;
}

static int target_of(const char *name)
{
    static const char *const names[] = {
        [VIR_NODE_SUSPEND_TARGET_MEM] = "mem",
        [VIR_NODE_SUSPEND_TARGET_DISK] = "disk",
        [VIR_NODE_SUSPEND_TARGET_HYBRID] = "hybrid",
    };
    for (int target = 0; target < (int)(sizeof names / sizeof names[0]); target++)
        if (strcmp(name, names[target]) == 0)
            return target;
    return -1;
}

static double boot_minus_mono(void)
{
    return clock_s(CLOCK_BOOTTIME) - clock_s(CLOCK_MONOTONIC);
}

/*
 * Whether the library would accept a new request now, without making one: libvirt's order of
 * checks refuses a request while one is in progress before it looks at the duration, so a
 * request one second too short is refused as too short only when the library is idle.
 */
static int accepts_new_request(int target)
{
    return virNodeSuspend((unsigned int)target, DURATION_S - 1, 0) < 0 &&
           virNodeSuspendGetLastErrorCode() == ERR_INVALID_ARG;
}

/*
 * Waits, running, until the guest has been asleep, or the library has given up on the
 * request without a sleep (then it is idle again: a failed suspend is reported at once, not
 * when the host side's patience ends). Returns the time asleep, 0 in the second case.
 * The guest wakes when the alarm rings or the host boots it again: no bound is needed here.
 */
static double wait_for_resume(int target, double gap_at_call)
{
    double slept;
    while ((slept = boot_minus_mono() - gap_at_call) < RESUMED_GAP_GROWTH_S) {
        if (accepts_new_request(target))
            return 0;
        poll_pause();
    }
    return slept;
}

/* A kernel attribute's first line, or why it could not be read. */
static void read_attribute(const char *path, char *value, size_t size)
{
    FILE *file = fopen(path, "r");
    value[0] = '\0';
    if (file == NULL) {
        snprintf(value, size, "unreadable:%s", strerror(errno));
        return;
    }
    if (fgets(value, (int)size, file) != NULL)
        value[strcspn(value, "\n")] = '\0';
    fclose(file);
}

/*
 * Asks for a wake-up the RTC cannot hold: the kernel refuses the alarm, and the library must
 * say so (invalid argument) and leave no alarm armed. Returns -1 if the library accepted it.
 */
static int request_unreachable_wakeup(void)
{
    int rc = virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, UNREACHABLE_S, 0);
    char alarm[64], fields[512];
    read_attribute(WAKEALARM, alarm, sizeof alarm);
    snprintf(fields, sizeof fields, "rc=%d code=%d message=\"%s\" wakealarm=\"%s\"", rc,
             virNodeSuspendGetLastErrorCode(), virNodeSuspendGetLastErrorMessage(), alarm);
    event("unreachable_wakeup", fields);
    return rc == 0 ? -1 : 0;
}

static int sleep_once(int target, const char *name)
{
    char fields[256];
    double gap_at_call = boot_minus_mono();
    int rc = virNodeSuspend((unsigned int)target, DURATION_S, 0);
    snprintf(fields, sizeof fields, "target=%s duration=%d rc=%d", name, DURATION_S, rc);
    event("call_returned", fields);
    if (rc < 0)
        return fail("virNodeSuspend");

    double slept = wait_for_resume(target, gap_at_call);
    /* How did the request end? At once when it failed; after the resume, once the
     * library's worker is back from the kernel too. */
    if (virNodeSuspendWait() < 0)
        return fail("virNodeSuspendWait");
    if (slept == 0) {
        event("error", "what=sleep message=\"the library reported the request over, but the guest never slept\"");
        return EXIT_FAILURE;
    }
    snprintf(fields, sizeof fields, "target=%s slept=%.3f", name, slept);
    event("resumed", fields);
    if (!accepts_new_request(target))
        return fail("new request");
    /* Left behind by the request: the alarm (empty when disarmed) and the hibernation mode
     * (the one the guest booted with, whatever the sleep selected). */
    char alarm[64], disk_mode[128];
    read_attribute(WAKEALARM, alarm, sizeof alarm);
    read_attribute("/sys/power/disk", disk_mode, sizeof disk_mode);
    snprintf(fields, sizeof fields, "target=%s wakealarm=\"%s\" disk=\"%s\"", name, alarm,
             disk_mode);
    event("accepts_new_request", fields);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    if (!in_qemu_guest()) {
        fprintf(stderr, "guest: this program suspends the machine it runs on; "
                        "it runs only in the QEMU guest that scripts/qemu/init starts\n");
        return EXIT_FAILURE;
    }
    /* One write, one log record, one line: sent as soon as it is complete. */
    if (freopen("/dev/kmsg", "w", stdout) == NULL) {
        perror("guest: /dev/kmsg");
        return EXIT_FAILURE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    unsigned int mask;
    const char *backend;
    if (virNodeSuspendGetTargetMask(&mask) < 0)
        return fail("virNodeSuspendGetTargetMask");
    if (virNodeSuspendGetBackend(&backend) < 0)
        return fail("virNodeSuspendGetBackend");
    char fields[64];
    snprintf(fields, sizeof fields, "value=%u backend=%s", mask, backend ? backend : "none");
    event("mask", fields);
    /* Had the library accepted it, the guest would sleep for two years: powered off instead. */
    if (request_unreachable_wakeup() < 0)
        return EXIT_FAILURE;

    for (int i = 1; i < argc; i++) {
        int target = target_of(argv[i]);
        if (target < 0) {
            fprintf(stderr, "guest: unknown target '%s'\n", argv[i]);
            return EXIT_FAILURE;
        }
        if (sleep_once(target, argv[i]) != EXIT_SUCCESS)
            return EXIT_FAILURE;
    }
    event("done", "");
    return EXIT_SUCCESS;
}
