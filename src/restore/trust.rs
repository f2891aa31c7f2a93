//! Whose image is it? An image is code: the restored process runs what it holds, with
//! the rights of whoever restores it. So an image that is another user's file, or that
//! others could have written to, is refused unless `MIG_TRUST_IMAGE=1` (`mig restart
//! --trust-image`) says the user knows where it comes from; and an image whose
//! executable became setuid or setgid since the checkpoint is refused (the dynamic loader
//! would ignore the library, and the program would start from its first step).

use mig_image::FileId;

/// `MIG_TRUST_IMAGE=1`: restore images of other users too.
pub fn trusted_by_user() -> bool {
    std::env::var(mig_proto::env::TRUST_IMAGE).is_ok_and(|v| v == "1")
}

/// Refuses an image file (`st`: its `fstat`) that is not this user's own.
pub fn check_owner(st: &libc::stat) -> Result<(), String> {
    if trusted_by_user() {
        return Ok(());
    }
    let me = crate::sys::geteuid();
    if st.st_uid != me {
        return Err(format!(
            "it belongs to user {}, not to this user ({me}); an image is code: restore it only if you trust where it comes from (MIG_TRUST_IMAGE=1, or mig restart --trust-image)",
            st.st_uid
        ));
    }
    // A file without a name (a memory file of `mig restart -`) cannot be written by others.
    if st.st_nlink > 0 && st.st_mode & 0o022 != 0 {
        return Err(format!(
            "it can be written by other users (mode {:o}); make it private (chmod go-w) or restore it with MIG_TRUST_IMAGE=1 (mig restart --trust-image)",
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// Refuses an executable that became setuid or setgid since the checkpoint (`saved`
/// is its identity then, `now_mode` its mode now).
pub fn check_exe_mode(saved: &FileId, now_mode: u32) -> Result<(), String> {
    let special = libc::S_ISUID | libc::S_ISGID;
    if now_mode & special != 0 && saved.mode & special == 0 {
        return Err("its executable became setuid or setgid since the checkpoint".into());
    }
    Ok(())
}
