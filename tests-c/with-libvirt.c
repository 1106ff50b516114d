/*
 * A C program linked with libvirt, as a hypervisor driver is: the header works with
 * <libvirt/libvirt.h> included before it (this file) or after it (with-libvirt-after.c), the
 * calls reach this library (not libvirt's private copies), and libvirt's own
 * virGetLastError sees the errors this library raised.
 */
#define _XOPEN_SOURCE 700

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <virnodesuspend.h>

#include "harness.h"
#include "with-libvirt.h"

static void libvirt_sees_the_errors_this_library_raises(void)
{
    root_host_without_swap();
    use_fake_root("10");
    virNodeSuspendTarget target = VIR_NODE_SUSPEND_TARGET_HYBRID; /* libvirt's own enum */
    CHECK(virNodeSuspend(target, 60, 0) == -1);
    /* libvirt's copy would not have set this library's error. */
    const virNodeSuspendError *ours = virNodeSuspendGetLastError();
    CHECK(ours != NULL);
    virErrorPtr theirs = virGetLastError();
    CHECK(theirs != NULL);
    CHECK(theirs->code == VIR_ERR_ARGUMENT_UNSUPPORTED && ours->code == theirs->code);
    CHECK(theirs->domain == VIR_FROM_NONE && ours->domain == theirs->domain);
    CHECK(theirs->level == VIR_ERR_ERROR);
    CHECK_STR(theirs->message, "argument unsupported: Hybrid-Suspend");
    CHECK_STR(ours->message, theirs->message);
}

/* A pointer to one is a pointer to the other: every field where libvirt has it (net too,
 * which libvirt marks deprecated). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* Where each goes after a char: the alignment C99 has no operator for. */
struct after_a_char_ours { char c; virNodeSuspendError e; };
struct after_a_char_libvirts { char c; virError e; };
static void the_error_is_laid_out_as_libvirts(void)
{
#define SAME_FIELD(field) \
    (offsetof(virNodeSuspendError, field) == offsetof(virError, field) && \
     sizeof(((virNodeSuspendError *)0)->field) == sizeof(((virError *)0)->field))
    CHECK(sizeof(virNodeSuspendError) == sizeof(virError));
    CHECK(offsetof(struct after_a_char_ours, e) == offsetof(struct after_a_char_libvirts, e));
    CHECK(SAME_FIELD(code));
    CHECK(SAME_FIELD(domain));
    CHECK(SAME_FIELD(message));
    CHECK(SAME_FIELD(level));
    CHECK(SAME_FIELD(conn));
    CHECK(SAME_FIELD(dom));
    CHECK(SAME_FIELD(str1));
    CHECK(SAME_FIELD(str2));
    CHECK(SAME_FIELD(str3));
    CHECK(SAME_FIELD(int1));
    CHECK(SAME_FIELD(int2));
    CHECK(SAME_FIELD(net));
#undef SAME_FIELD
}
#pragma GCC diagnostic pop

int main(void)
{
    static const struct harness_case cases[] = {
        {"libvirt sees the errors this library raises", libvirt_sees_the_errors_this_library_raises},
        {"libvirt's header after this one, sentinels and all", libvirt_header_after_this_one},
        {"the error is laid out as libvirt's virError", the_error_is_laid_out_as_libvirts},
    };
    return harness_main(cases, sizeof(cases) / sizeof(cases[0]));
}
