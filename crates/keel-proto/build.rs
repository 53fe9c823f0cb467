//! Compiles proto/keel/v1/*.proto with protox (a Rust protobuf compiler, so no protoc is
//! needed anywhere), generates messages, clients and servers with tonic's prost codegen,
//! and writes the encoded descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/keel/v1/common.proto",
    "proto/keel/v1/kv.proto",
    "proto/keel/v1/txn.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection clients want descriptors without source info: smaller, same content.
    let mut bare = fds.clone();
    for f in &mut bare.file {
        f.source_code_info = None;
    }
    std::fs::write(out_dir.join("keel_descriptor.bin"), bare.encode_to_vec())?;

    tonic_prost_build::configure()
        .bytes(".keel.v1")
        .compile_fds(fds)?;
    Ok(())
}
