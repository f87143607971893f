//! # fieldcap-media
//!
//! Media metadata scrubbing for public releases: a copy of an MP4/QuickTime/3GP/M4A movie or a
//! JPEG in which location and identity metadata is overwritten in place, so that the picture
//! and sound bytes stay identical to the original's. See [`scrub_copy`].

mod scrub;

pub use scrub::*;
