fn main() {
    // The shared library is loaded as libvirnodesuspend.so.0 (and interposes libvirt's
    // private symbols under LD_PRELOAD), so it carries that SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvirnodesuspend.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}
