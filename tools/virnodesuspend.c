/*
 * virnodesuspend: the library at the shell, and an example of using it from C.
 *
 *   virnodesuspend caps [--json]            the targets this host supports, and the backend
 *   virnodesuspend suspend TARGET DURATION  sleep in TARGET (mem, disk, hybrid, as
 *                                           virsh nodesuspend), woken DURATION s later
 *
 * Exit status: 0 done, 1 the library refused or the suspend failed (its libvirt error is
 * printed), 2 bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <virnodesuspend.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2 };

/* virsh nodesuspend's names for the targets, by virNodeSuspendTarget. */
static const char *const target_names[] = {"mem", "disk", "hybrid"};
#define TARGET_COUNT (sizeof(target_names) / sizeof(target_names[0]))

static const char caps_usage[] =
    "Usage: virnodesuspend caps [--json]\n"
    "\n"
    "Prints the suspend targets this host supports (mem, disk, hybrid) and the backend that\n"
    "answered (logind, pm-utils or kernel; none when no backend is available), which is\n"
    "also the one that would carry out a suspend.\n";

static const char suspend_usage[] =
    "Usage: virnodesuspend suspend TARGET DURATION\n"
    "\n"
    "Puts the host to sleep in TARGET (mem: Suspend-to-RAM, disk: Suspend-to-Disk,\n"
    "hybrid: both) and has the RTC wake it DURATION seconds from now (at least 60).\n"
    "The sleep starts after the library's delay (VIRNODESUSPEND_DELAY, 10 s by default);\n"
    "the command returns when the host is back, or the suspend failed.\n";

static const char usage[] =
    "Usage: virnodesuspend caps [--json]\n"
    "       virnodesuspend suspend TARGET DURATION\n"
    "       virnodesuspend [COMMAND] --help\n"
    "\n"
    "Node power management as libvirt does it (virsh nodesuspend), through libvirnodesuspend.\n";

static int report_library_error(const char *what)
{
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    fprintf(stderr, "virnodesuspend: %s: %s\n", what, virNodeSuspendGetLastErrorMessage());
    if (error != NULL)
        fprintf(stderr, "virnodesuspend: libvirt error code %d, domain %d\n", error->code, error->domain);
    return EXIT_REFUSED;
}

static int bad_usage(const char *text, const char *problem, const char *argument)
{
    fprintf(stderr, "virnodesuspend: %s%s\n\n%s", problem, argument, text);
    return EXIT_USAGE;
}

static int caps(int argc, char **argv)
{
    int json = 0;
    unsigned int mask;
    const char *backend;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(caps_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0)
            return bad_usage(caps_usage, "unknown argument: ", argv[i]);
        json = 1;
    }
    if (virNodeSuspendGetTargetMask(&mask) < 0)
        return report_library_error("cannot query the host's suspend targets");
    if (virNodeSuspendGetBackend(&backend) < 0)
        return report_library_error("cannot query the host's suspend backend");

    if (json) {
        /* Backend and target names are plain ASCII words: nothing to escape. */
        if (backend)
            printf("{\"backend\": \"%s\", \"targets\": [", backend);
        else
            printf("{\"backend\": null, \"targets\": [");
        const char *separator = "";
        for (size_t t = 0; t < TARGET_COUNT; t++) {
            if (mask & (1u << t)) {
                printf("%s\"%s\"", separator, target_names[t]);
                separator = ", ";
            }
        }
        printf("]}\n");
        return 0;
    }
    printf("backend: %s\n", backend ? backend : "none");
    for (size_t t = 0; t < TARGET_COUNT; t++)
        printf("%s: %s\n", target_names[t], mask & (1u << t) ? "supported" : "unsupported");
    return 0;
}

/* A duration as virsh takes it: a whole number of seconds, nothing else. */
static int parse_duration(const char *text, unsigned long long *duration)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    *duration = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

static int suspend(int argc, char **argv)
{
    unsigned long long duration;
    unsigned int target = TARGET_COUNT;

    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        fputs(suspend_usage, stdout);
        return 0;
    }
    if (argc != 2)
        return bad_usage(suspend_usage, "expected TARGET and DURATION", "");
    for (unsigned int t = 0; t < TARGET_COUNT; t++) {
        if (strcmp(argv[0], target_names[t]) == 0)
            target = t;
    }
    if (target == TARGET_COUNT)
        return bad_usage(suspend_usage, "unknown target (mem, disk or hybrid): ", argv[0]);
    if (parse_duration(argv[1], &duration) < 0)
        return bad_usage(suspend_usage, "invalid duration (whole seconds): ", argv[1]);

    if (virNodeSuspend(target, duration, 0) < 0)
        return report_library_error("suspend refused");
    printf("suspend to %s requested; the RTC wakes the host %llu s from now\n", target_names[target], duration);
    fflush(stdout);
    /* The library suspends from a thread of this process: stay until the host is back. */
    if (virNodeSuspendWait() < 0)
        return report_library_error("suspend failed");
    printf("the host is back\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return bad_usage(usage, "expected a command", "");
    if (strcmp(argv[1], "caps") == 0)
        return caps(argc - 2, argv + 2);
    if (strcmp(argv[1], "suspend") == 0)
        return suspend(argc - 2, argv + 2);
    if (strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    return bad_usage(usage, "unknown command: ", argv[1]);
}
