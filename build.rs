fn main() {
    // The shared library is loaded as libvirnodesuspend.so.0 (and interposes libvirt's
    // private symbols under LD_PRELOAD), so it carries that SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvirnodesuspend.so.0");
    // The unwinder (panics are caught at the C boundary) linked in from libgcc_eh.a rather
    // than libgcc_s.so.1: named before the standard library's -lgcc_s, it resolves every
    // _Unwind_* symbol first and --as-needed drops libgcc_s. Preloaded into every process a
    // libvirt daemon starts, libgcc_s would cost each 0.12-0.15 ms: its constructor
    // (__cpu_indicator_init) runs CPUID, which a virtual machine traps (4.6 us a time on
    // the CI machine; issue 15). The unwinder's symbols stay local (only vir* is exported),
    // so it never stands in for the process's own.
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
}
