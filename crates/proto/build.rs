//! Compiles the protocol's .proto files with protox (pure Rust: no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/envoy/service/discovery/v3/ads.proto",
        "proto/weft/config/v1/config.proto",
        "proto/otlp/trace.proto",
        "proto/weft/ca/v1/ca.proto",
        "proto/envoy/service/auth/v3/external_auth.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
