//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! the Rust types with prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto");
    let fds = protox::compile(["yixin/events/v1/events.proto"], ["../../proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
