//! HTML pages, rendered with maud. Views only: handlers gather the data, and nothing here knows the router,
//! the app's state or the session. `layout` is the frame every page shares; then one module per page:
//! `home` (the start page and the patient summary), `inspect`, `timeline`, `confirm` (log out, reset),
//! `authorize_post` (the form that sends the authorize request as a POST).

pub mod authorize_post;
pub mod confirm;
pub mod home;
pub mod inspect;
pub mod layout;
pub mod timeline;
