//! fhir-client (being built).
