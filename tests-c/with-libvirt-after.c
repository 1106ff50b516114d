/* This library's header first, then libvirt's: both define virNodeSuspendTarget, once. */
#define _XOPEN_SOURCE 700
#define VIR_ENUM_SENTINELS

#include <virnodesuspend.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "harness.h"
#include "with-libvirt.h"

void libvirt_header_after_this_one(void)
{
    root_host_without_swap();
    use_fake_root("10");
    CHECK(VIR_NODE_SUSPEND_TARGET_LAST == 3);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_LAST, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "invalid argument: Invalid suspend target");
    CHECK_STR(virGetLastErrorMessage(), "invalid argument: Invalid suspend target");
}
