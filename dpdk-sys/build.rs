//! Finds the system DPDK with pkg-config, generates bindings with bindgen and
//! compiles the C shim that exports DPDK's static-inline hot functions.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_DPDK: &str = "22.11";
const INSTALL_HINT: &str =
    "DPDK 22.11 or newer was not found by pkg-config (libdpdk); install it with `apt-get install -y libdpdk-dev pkg-config clang libclang-dev` (or run scripts/setup)";

fn fail(msg: &str) -> ! {
    // One line, so it is what the user sees at the bottom of cargo's output.
    eprintln!("error: patronus-dpdk-sys: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new("pkg-config").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    if pkg_config(&["--atleast-version", MIN_DPDK, "libdpdk"]).is_none() {
        fail(INSTALL_HINT);
    }
    let version = pkg_config(&["--modversion", "libdpdk"]).unwrap_or_default();
    let cflags = pkg_config(&["--cflags", "libdpdk"]).unwrap_or_else(|| fail(INSTALL_HINT));
    let libs = pkg_config(&["--libs", "libdpdk"]).unwrap_or_else(|| fail(INSTALL_HINT));
    println!("cargo:version={version}");

    // `-include rte_config.h` is two words; keep the pair together.
    let cflag_words: Vec<String> = cflags.split_whitespace().map(str::to_string).collect();

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(false);
    for flag in &cflag_words {
        shim.flag(flag);
    }
    shim.compile("patronus_dpdk_shim");

    for word in libs.split_whitespace() {
        if let Some(dir) = word.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = word.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    // Driver libraries are plugins that EAL loads at init, so pkg-config does
    // not list them for dynamic linking. We call two driver APIs directly:
    // rte_eth_from_rings (tests and benchmarks) and rte_vdev_init.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

    let mut builder = bindgen::Builder::default()
        .header("shim/wrapper.h")
        .clang_arg("-Ishim")
        .allowlist_function("rte_.*")
        .allowlist_function("patronus_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // bindgen cannot lay out a packed type that contains an aligned one
        // (E0588), nor derive Debug for this one; we use neither.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for flag in &cflag_words {
        builder = builder.clang_arg(flag);
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!(
            "bindgen failed on the DPDK {version} headers: {e}"
        ))
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}
