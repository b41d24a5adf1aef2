//! Folders copied into build contexts, and the content hash image tags are made of.

use std::{fs, path::Path};

use anyhow::Context as _;

pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
            // The module cache's files are read-only; the copies are ours.
            let mut perms = fs::metadata(&target)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&target, perms)?;
        }
    }
    Ok(())
}

/// 64-bit FNV-1a: a stable content hash for tags (not for security).
#[derive(Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    /// 12 hex digits, for an image tag.
    pub fn hex(&self) -> String {
        format!("{:012x}", self.0 >> 16)
    }
}

/// Every file under `dir`, in name order: its path below `top`, executable bit and contents.
pub fn hash_dir(hash: &mut Fnv, top: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            hash_dir(hash, top, &path)?;
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            let relative = path.strip_prefix(top).unwrap_or(&path);
            hash.add(relative.to_string_lossy().as_bytes());
            // Only what git keeps of the mode (executable or not), not this checkout's umask.
            let executable = fs::metadata(&path)?.permissions().mode() & 0o111 != 0;
            hash.add(if executable { b"x" } else { b"-" });
            hash.add(&fs::read(&path)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_sees_every_byte_and_the_boundaries() {
        let of = |parts: &[&[u8]]| {
            let mut h = Fnv::default();
            for p in parts {
                h.add(p);
            }
            h.0
        };
        assert_eq!(of(&[b"abc"]), of(&[b"abc"]));
        assert_ne!(of(&[b"abc"]), of(&[b"abd"]));
        assert_ne!(of(&[b"ab", b"c"]), of(&[b"a", b"bc"]));
    }
}
