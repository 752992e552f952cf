//! HTML pages, rendered with maud. Views only: handlers gather the data.

pub mod authorize_post;
pub mod confirm;
pub mod home;
pub mod inspect;
pub mod layout;
pub mod timeline;
