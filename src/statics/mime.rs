//! Content-Type by file extension: a built-in table of the common web types, extended (and
//! overridden) by `mime.types` files (`--mimefile`, `/etc/mime.types`).

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// What a file with no known extension is sent as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

#[rustfmt::skip]
const BUILT_IN: &[(&str, &str)] = &[
    ("html", "text/html"), ("htm", "text/html"), ("css", "text/css"),
    ("js", "text/javascript"), ("mjs", "text/javascript"), ("json", "application/json"),
    ("txt", "text/plain"), ("xml", "application/xml"), ("csv", "text/csv"),
    ("png", "image/png"), ("jpg", "image/jpeg"), ("jpeg", "image/jpeg"), ("gif", "image/gif"),
    ("svg", "image/svg+xml"), ("ico", "image/vnd.microsoft.icon"), ("webp", "image/webp"),
    ("avif", "image/avif"), ("woff", "font/woff"), ("woff2", "font/woff2"), ("ttf", "font/ttf"),
    ("otf", "font/otf"), ("pdf", "application/pdf"), ("zip", "application/zip"),
    ("gz", "application/gzip"), ("wasm", "application/wasm"), ("mp4", "video/mp4"),
    ("webm", "video/webm"), ("mp3", "audio/mpeg"), ("map", "application/json"),
    ("md", "text/markdown"),
];

/// Extension (lowercase) to type.
#[derive(Debug, Clone)]
pub struct MimeTable {
    types: HashMap<String, String>,
}

impl MimeTable {
    /// The built-in table plus every `mime.types` file in `files` (later ones win).
    pub fn load(files: &[impl AsRef<Path>]) -> io::Result<MimeTable> {
        let mut types: HashMap<String, String> = BUILT_IN
            .iter()
            .map(|(e, t)| (e.to_string(), t.to_string()))
            .collect();
        for f in files {
            let text = std::fs::read_to_string(f.as_ref()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("--mimefile {}: {e}", f.as_ref().display()),
                )
            })?;
            for line in text.lines() {
                let mut words = line.split_whitespace();
                let Some(ty) = words.next().filter(|t| !t.starts_with('#')) else {
                    continue;
                };
                for ext in words {
                    types.insert(ext.to_ascii_lowercase(), ty.to_string());
                }
            }
        }
        Ok(MimeTable { types })
    }

    /// The type of a file name.
    pub fn content_type(&self, name: &Path) -> &str {
        name.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| self.types.get(&e.to_ascii_lowercase()))
            .map_or(DEFAULT_TYPE, String::as_str)
    }
}

/// The Content-Type value of a type: `charset=utf-8` added for text types.
pub fn header_value(ty: &str) -> String {
    if ty.starts_with("text/") || ty == "application/javascript" {
        format!("{ty}; charset=utf-8")
    } else {
        ty.to_string()
    }
}
