//! Heavy verification levels: checksums, full archive reads, restore tests.

pub mod archive;
pub mod checksum;
pub mod restore;
