//! Suspend targets, numbered as libvirt's `virNodeSuspendTarget`.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `VIR_NODE_SUSPEND_TARGET_MEM`: Suspend-to-RAM (ACPI S3, or the kernel's `mem`).
    Mem = 0,
    /// `VIR_NODE_SUSPEND_TARGET_DISK`: Suspend-to-Disk (hibernation).
    Disk = 1,
    /// `VIR_NODE_SUSPEND_TARGET_HYBRID`: write the hibernation image, then suspend to RAM.
    Hybrid = 2,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Mem, Target::Disk, Target::Hybrid];

    pub fn from_raw(raw: u32) -> Option<Target> {
        Target::ALL.into_iter().find(|t| *t as u32 == raw)
    }

    /// The target's bit in `virNodeSuspendGetTargetMask`'s mask.
    pub fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The target's name, as virsh's `nodesuspend` and the request record spell it.
    pub fn name(self) -> &'static str {
        match self {
            Target::Mem => "mem",
            Target::Disk => "disk",
            Target::Hybrid => "hybrid",
        }
    }

    pub fn named(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The name libvirt reports when the host does not support the target.
    pub fn libvirt_name(self) -> &'static str {
        match self {
            Target::Mem => "Suspend-to-RAM",
            Target::Disk => "Suspend-to-Disk",
            Target::Hybrid => "Hybrid-Suspend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_and_bits_are_libvirts() {
        assert_eq!(Target::from_raw(0), Some(Target::Mem));
        assert_eq!(Target::from_raw(1), Some(Target::Disk));
        assert_eq!(Target::from_raw(2), Some(Target::Hybrid));
        assert_eq!(Target::from_raw(3), None);
        assert_eq!(Target::from_raw(u32::MAX), None);
        assert_eq!(Target::ALL.map(Target::bit), [1, 2, 4]);
    }
}
