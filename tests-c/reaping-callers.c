/*
 * The pm-utils backend in processes that reap their children themselves: qemu-ga calls
 * waitpid(-1, WNOHANG) from its SIGCHLD handler, other daemons set SIGCHLD to SIG_IGN.
 * Neither may take the helpers' exit statuses away from the library: the mask still comes
 * from pm-is-supported's answers, and virNodeSuspendWait still tells a pm-suspend that
 * exited 0 from one that exited 1.
 */
#define _XOPEN_SOURCE 700

#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <virnodesuspend.h>

static volatile sig_atomic_t handled;

static void reap_every_child(int signal)
{
    int saved = errno;
    (void)signal;
    handled = handled + 1;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        continue;
    errno = saved;
}

static void install_reaper(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = reap_every_child;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    CHECK(sigaction(SIGCHLD, &action, NULL) == 0);
}

static void ignore_children(void)
{
    CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
}

/* A shell script under the fake root's bin/, executable. */
static void root_script(const char *name, const char *body)
{
    char relative[64], script[1024];
    snprintf(relative, sizeof(relative), "bin/%s", name);
    snprintf(script, sizeof(script), "#!/bin/sh\n%s\n", body);
    root_write(relative, script);
    CHECK(chmod(root_path(relative), 0755) == 0);
}

/* pm-utils on PATH answering for suspend to RAM only; pm-suspend exits with `status`
 * and leaves what its process saw of its signals in `signals`. */
static void use_pm_utils(int status)
{
    char body[512];
    root_host("freeze mem", "[platform] shutdown reboot", false);
    use_fake_root("0");
    root_script("pm-is-supported", "[ \"$1\" = --suspend ]");
    snprintf(body, sizeof(body), "/bin/grep -E '^Sig(Blk|Ign)' /proc/self/status > '%s'\nexit %d",
             root_path("signals"), status);
    root_script("pm-suspend", body);
    CHECK(setenv("VIRNODESUSPEND_BACKENDS", "pm-utils", 1) == 0);
    CHECK(setenv("PATH", root_path("bin"), 1) == 0);
}

/* The mask, a suspend whose pm-suspend exits with `status`, and its wait. */
static void query_suspend_and_wait(int status)
{
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == 1u << VIR_NODE_SUSPEND_TARGET_MEM);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    if (status == 0) {
        CHECK(virNodeSuspendWait() == 0);
    } else {
        CHECK(virNodeSuspendWait() == -1);
        CHECK_ERROR(VIR_ERR_OPERATION_FAILED, VIR_FROM_NONE, "operation failed: pm-suspend exited with status 1");
    }
    /* The helper ran with no signal blocked and SIGCHLD (bit 17) not ignored. */
    const char *signals = root_read("signals");
    CHECK(strstr(signals, "SigBlk:\t0000000000000000\n") != NULL);
    unsigned long long ignored = 0;
    const char *line = strstr(signals, "SigIgn:\t");
    CHECK(line != NULL && sscanf(line, "SigIgn:\t%llx", &ignored) == 1);
    CHECK((ignored & (1ull << (SIGCHLD - 1))) == 0);
}

static void a_reaping_handler_takes_no_status_of_a_helper_that_succeeds(void)
{
    use_pm_utils(0);
    install_reaper();
    query_suspend_and_wait(0);
    /* The handler ran when the library's children ended (whether it or the library got to
     * reap them first is a race that each side must survive). */
    CHECK(handled > 0);
}

static void a_reaping_handler_takes_no_status_of_a_helper_that_fails(void)
{
    use_pm_utils(1);
    install_reaper();
    query_suspend_and_wait(1);
}

static void sigchld_ignored_takes_no_status_of_a_helper_that_succeeds(void)
{
    use_pm_utils(0);
    ignore_children();
    query_suspend_and_wait(0);
}

static void sigchld_ignored_takes_no_status_of_a_helper_that_fails(void)
{
    use_pm_utils(1);
    ignore_children();
    query_suspend_and_wait(1);
}

/* The reaper installed after the mask query, as a daemon that sets up its child handling
 * late: the suspend's status still arrives. */
static void a_reaper_installed_after_the_query(void)
{
    use_pm_utils(0);
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    install_reaper();
    query_suspend_and_wait(0);
}

int main(void)
{
    static const struct harness_case cases[] = {
        {"a reaping handler takes no status of a helper that succeeds", a_reaping_handler_takes_no_status_of_a_helper_that_succeeds},
        {"a reaping handler takes no status of a helper that fails", a_reaping_handler_takes_no_status_of_a_helper_that_fails},
        {"SIGCHLD ignored takes no status of a helper that succeeds", sigchld_ignored_takes_no_status_of_a_helper_that_succeeds},
        {"SIGCHLD ignored takes no status of a helper that fails", sigchld_ignored_takes_no_status_of_a_helper_that_fails},
        {"a reaper installed after the query", a_reaper_installed_after_the_query},
    };
    return harness_main(cases, sizeof(cases) / sizeof(cases[0]));
}
