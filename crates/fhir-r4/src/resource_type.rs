//! `ResourceType`: getting a typed resource out of a [`Resource`] or a [`Bundle`] (hand-written; the impls
//! are generated).

use crate::rt::Object;
use crate::{Bundle, Resource};

/// One R4 resource type (`Observation`, `Patient`, …), to take out of a [`Resource`] by type.
pub trait ResourceType: Object + Into<Resource> {
    /// The resource, when `resource` is one of this type.
    fn of(resource: &Resource) -> Option<&Self>;
    /// The resource, when `resource` is one of this type; else `resource` back.
    fn from_resource(resource: Resource) -> Result<Self, Resource>;
}

impl Resource {
    /// This resource as a `T`, when it is one: `resource.get::<Observation>()`.
    pub fn get<T: ResourceType>(&self) -> Option<&T> {
        T::of(self)
    }
}

impl Bundle {
    /// The entries' resources of type `T`, in order: `bundle.resources::<Observation>()`.
    pub fn resources<'a, T: ResourceType + 'a>(&'a self) -> impl Iterator<Item = &'a T> {
        self.entry
            .iter()
            .filter_map(|e| e.resource.as_ref())
            .filter_map(T::of)
    }

    /// The `link` URL with `relation` (`"next"` for the next page of a search), when there is one.
    pub fn link_url(&self, relation: &str) -> Option<&str> {
        self.link
            .iter()
            .find(|l| l.relation.as_ref().and_then(|r| r.as_str()) == Some(relation))
            .and_then(|l| l.url.as_ref())
            .and_then(|u| u.as_str())
    }
}
