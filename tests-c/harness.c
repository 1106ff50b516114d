/*
 * The whole C API, as a C caller without libvirt uses it: the mask and the backend, every
 * error with its code and message, the error API (thread-local, reset on entry, NULL when
 * none), and a request waited for. What the library decides and does to the host's files
 * (which targets it supports, one request at a time, the alarm) is tested in the Rust
 * unit tests; one request across processes and threads in host-request.c.
 */
#define _XOPEN_SOURCE 700

#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <virnodesuspend.h>

#define ALL_TARGETS ((1u << VIR_NODE_SUSPEND_TARGET_MEM) | (1u << VIR_NODE_SUSPEND_TARGET_DISK) | \
                     (1u << VIR_NODE_SUSPEND_TARGET_HYBRID))

static void check_no_error(void)
{
    CHECK(virNodeSuspendGetLastError() == NULL);
    CHECK(virNodeSuspendGetLastErrorCode() == 0);
    CHECK_STR(virNodeSuspendGetLastErrorMessage(), "no error");
}

static void mask_and_backend_of_a_host_that_can_do_everything(void)
{
    root_host();
    use_fake_root("10");
    unsigned int mask = 0;
    const char *backend = NULL;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == ALL_TARGETS);
    check_no_error();
    CHECK(virNodeSuspendGetBackend(&backend) == 0);
    CHECK_STR(backend, "kernel");
    /* Cached: the host's files no longer matter. */
    root_remove("sys/power/state");
    mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == ALL_TARGETS);
}

static void nothing_is_supported_when_no_backend_is_available(void)
{
    use_fake_root("10"); /* an empty root: no /sys/power */
    unsigned int mask = 0xdead;
    const char *backend = "unset";
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == 0);
    CHECK(virNodeSuspendGetBackend(&backend) == 0);
    CHECK(backend == NULL);
}

static void null_arguments_are_invalid(void)
{
    use_fake_root("10");
    CHECK(virNodeSuspendGetTargetMask(NULL) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "bitmask in virNodeSuspendGetTargetMask must not be NULL");
    /* libvirt's fields for an unprefixed argument error: the function and the argument. */
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    CHECK_STR(error->str1, "virNodeSuspendGetTargetMask");
    CHECK_STR(error->str2, "bitmask");
    CHECK(error->str3 == NULL && error->int1 == 0 && error->int2 == 0);
    CHECK(error->conn == NULL && error->dom == NULL && error->net == NULL);
    CHECK(virNodeSuspendGetBackend(NULL) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "backend in virNodeSuspendGetBackend must not be NULL");
}

static void each_refused_request_has_libvirts_error(void)
{
    root_host_without_swap();
    use_fake_root("10");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspend");
    CHECK(virNodeSuspend(3, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "invalid argument: Invalid suspend target");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_DISK, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_NONE, "argument unsupported: Suspend-to-Disk");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_HYBRID, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_NONE, "argument unsupported: Hybrid-Suspend");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 59, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                "invalid argument: Suspend duration is too short, must be at least 60 seconds");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 10000000000ULL, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                "invalid argument: Suspend duration 10000000000 is too long, "
                "the RTC cannot wake the host after 2099-12-31 23:59:59 UTC");
}

static void a_host_without_rtc_cannot_be_woken(void)
{
    root_host_without_swap();
    root_remove("sys/class/rtc/rtc0/wakealarm");
    use_fake_root("10");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == -1);
    char message[512];
    snprintf(message, sizeof(message), "Operation not supported: no real-time clock in '%s' can wake the host",
             root_path("sys/class/rtc"));
    CHECK_ERROR(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_NONE, message);
}

static void a_bad_knob_fails_every_call_after_the_flags_check(void)
{
    use_fake_root("soon");
    unsigned int mask;
    const char *message = "unsupported configuration: VIRNODESUSPEND_DELAY must be a whole number of seconds "
                          "up to 3600, not 'soon'";
    CHECK(virNodeSuspendGetTargetMask(&mask) == -1);
    CHECK_ERROR(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_NONE, message);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspend");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_NONE, message);
}

static void each_call_resets_the_error_and_reset_clears_it(void)
{
    root_host_without_swap();
    use_fake_root("10");
    unsigned int mask;
    check_no_error();
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1) == -1);
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    CHECK(error != NULL);
    /* Reading the error does not change it. */
    CHECK(virNodeSuspendGetLastError() == error);
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    check_no_error();
    CHECK(virNodeSuspendGetTargetMask(NULL) == -1);
    CHECK(virNodeSuspendGetLastError() != NULL);
    virNodeSuspendResetLastError();
    check_no_error();
    virNodeSuspendResetLastError();
    check_no_error();
}

/* What another thread saw of its own errors. */
struct thread_view {
    bool clean_at_start;
    bool own_error_seen;
};

static void *fail_in_another_thread(void *arg)
{
    struct thread_view *view = arg;
    view->clean_at_start = virNodeSuspendGetLastError() == NULL;
    view->own_error_seen = virNodeSuspend(3, 60, 0) == -1 &&
                           strcmp(virNodeSuspendGetLastErrorMessage(), "invalid argument: Invalid suspend target") == 0;
    return NULL;
}

static void errors_are_per_thread(void)
{
    root_host_without_swap();
    use_fake_root("10");
    struct thread_view view = {false, false};
    pthread_t thread;
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1) == -1);
    CHECK(pthread_create(&thread, NULL, fail_in_another_thread, &view) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(view.clean_at_start);
    CHECK(view.own_error_seen);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspend");
}

static void waiting_without_a_request_is_an_error(void)
{
    use_fake_root("0");
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE,
                "Requested operation is not valid: no suspend request was made");
}

static void wait_returns_once_the_host_is_back(void)
{
    root_host_without_swap();
    use_fake_root("1");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == 0);
    check_no_error();
    /* Over: waiting again reports the same outcome at once. */
    CHECK(virNodeSuspendWait() == 0);
}

static void wait_reports_why_the_suspend_failed(void)
{
    char message[512];
    root_host_without_swap();
    use_fake_root("0");
    unsigned int mask;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    root_remove("sys/power/state");
    CHECK(symlink("/dev/full", root_path("sys/power/state")) == 0);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == -1);
    snprintf(message, sizeof(message), "Unable to write 'mem' to '%s': No space left on device",
             root_path("sys/power/state"));
    CHECK_ERROR(VIR_ERR_SYSTEM_ERROR, VIR_FROM_NONE, message);
}

static bool ends_with(const char *text, const char *end)
{
    return strlen(text) >= strlen(end) && strcmp(text + strlen(text) - strlen(end), end) == 0;
}

/* With few or no descriptors free, every call either works or fails with the error the
 * system gave (EMFILE): never as a host without an RTC or a request in progress, wherever
 * in the request the descriptors run out; and the first request that gets through is
 * carried out, not taken for one whose process is gone (the process's identity could not
 * be read at the first calls). The delay keeps it pending while GetInfo looks, which
 * settles a request whose process seems gone. */
static void running_out_of_descriptors_is_named_as_such(void)
{
    root_host_without_swap();
    use_fake_root("2");
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    limit.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
    bool accepted = false;
    for (int free_count = 0; free_count < 12 && !accepted; free_count++) {
        int fds[64], count = 0;
        while (count < 64 && (fds[count] = dup(2)) >= 0)
            count++;
        CHECK(count < 64 && errno == EMFILE);
        for (int i = 0; i < free_count; i++)
            close(fds[--count]);
        int result = virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0);
        if (result == 0) {
            accepted = true;
            virNodeSuspendInfo info;
            CHECK(virNodeSuspendGetInfo(&info, 0) == 0);
            CHECK(info.state == VIR_NODE_SUSPEND_STATE_PENDING && info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_NONE);
            result = virNodeSuspendWait();
            CHECK(result == 0);
            CHECK_STR(root_read("sys/power/state"), "mem");
        }
        if (result < 0) {
            const char *message = virNodeSuspendGetLastErrorMessage();
            printf("# %d free: %s\n", free_count, message);
            CHECK(virNodeSuspendGetLastErrorCode() == VIR_ERR_SYSTEM_ERROR);
            CHECK(ends_with(message, ": Too many open files"));
        }
        while (count > 0)
            close(fds[--count]);
    }
    CHECK(accepted);
}

static void the_version_is_libvirts_encoding(void)
{
    unsigned long version = 0;
    CHECK(virNodeSuspendGetVersion(&version) == 0);
    check_no_error();
    /* major * 1,000,000 + minor * 1,000 + release, of meson.build's version. */
    CHECK(version == VIRNODESUSPEND_PROJECT_VERSION_NUMBER);
    CHECK(virNodeSuspendGetVersion(NULL) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "version in virNodeSuspendGetVersion must not be NULL");
}

int main(void)
{
    static const struct harness_case cases[] = {
        {"mask and backend of a host that can do everything", mask_and_backend_of_a_host_that_can_do_everything},
        {"nothing is supported when no backend is available", nothing_is_supported_when_no_backend_is_available},
        {"NULL arguments are invalid", null_arguments_are_invalid},
        {"each refused request has libvirt's error", each_refused_request_has_libvirts_error},
        {"a host without RTC cannot be woken", a_host_without_rtc_cannot_be_woken},
        {"a bad knob fails every call after the flags check", a_bad_knob_fails_every_call_after_the_flags_check},
        {"each call resets the error and reset clears it", each_call_resets_the_error_and_reset_clears_it},
        {"errors are per thread", errors_are_per_thread},
        {"waiting without a request is an error", waiting_without_a_request_is_an_error},
        {"wait returns once the host is back", wait_returns_once_the_host_is_back},
        {"wait reports why the suspend failed", wait_reports_why_the_suspend_failed},
        {"running out of descriptors is named as such", running_out_of_descriptors_is_named_as_such},
        {"the version is libvirt's encoding", the_version_is_libvirts_encoding},
    };
    return harness_main(cases, sizeof(cases) / sizeof(cases[0]));
}
