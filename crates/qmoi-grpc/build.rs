//! Compile `proto/qmoi/v1/monitor.proto` with protox (a Rust proto compiler: no system
//! `protoc`), generate the server with tonic-prost-build, and keep the descriptor set for
//! server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!(): a build script binary is reused from a
    // shared target folder when the checkout moved (it then looked for the proto in the
    // old place).
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("qmoi/v1/monitor.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("qmoi_v1_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(false).compile_fds(fds)?;
    Ok(())
}
