//! Content-hashes and pre-compresses every file in `assets/`, so the asset
//! component serves `immutable` URLs with no compression work per request.
//!
//! Writes `$OUT_DIR/assets.rs`: a `FILES` table and one `const` per file
//! naming its hashed path (`style.css` -> `STYLE_CSS`).

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn main() {
    let src = Path::new("assets");
    println!("cargo::rerun-if-changed=assets");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let out = Path::new(&out);
    let mut names: Vec<String> = std::fs::read_dir(src)
        .expect("assets/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut table = String::from("pub static FILES: &[Asset] = &[\n");
    let mut consts = String::new();
    for name in &names {
        let body = std::fs::read(src.join(name)).expect("asset");
        let digest = Sha256::digest(&body);
        let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let (stem, ext) = name.rsplit_once('.').expect("assets have an extension");
        let path = format!("/assets/{stem}.{hash}.{ext}");
        let gz = gzip(&body);
        let br = brotli(&body);
        for (suffix, bytes) in [("", &body), (".gz", &gz), (".br", &br)] {
            std::fs::write(out.join(format!("{name}{suffix}")), bytes).expect("write");
        }
        let content_type = match ext {
            "css" => "text/css; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("no content type for .{other}"),
        };
        let _ = writeln!(
            table,
            "    Asset {{ name: {name:?}, path: {path:?}, content_type: {content_type:?}, \
             etag: \"\\\"{hash}\\\"\", identity: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")), \
             gzip: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.gz\")), \
             brotli: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.br\")) }},"
        );
        let ident = name.replace(['.', '-'], "_").to_ascii_uppercase();
        let _ = writeln!(
            consts,
            "/// The hashed path of `assets/{name}`.\npub const {ident}: &str = {path:?};"
        );
    }
    table.push_str("];\n");
    std::fs::write(out.join("assets.rs"), format!("{consts}\n{table}")).expect("assets.rs");
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).expect("gzip");
    enc.finish().expect("gzip")
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        enc.write_all(body).expect("brotli");
    }
    out
}
