//! sea-orm entities, one per table (2.0 dense format). Rows, not domain
//! types: conversion to and from `yixin_domain` lives in `crate::convert`.

pub mod agent;
pub mod agent_patient_home;
pub mod alarm;
pub mod audit_log;
pub mod booking;
pub mod idempotency_key;
pub mod nurse;
pub mod nurse_credentials;
pub mod nurse_location;
pub mod nurse_shift;
pub mod offer;
pub mod order;
pub mod order_event;
pub mod order_patient;
pub mod organization;
pub mod otp_code;
pub mod outbox;
pub mod region_lease;
pub mod resident;
pub mod resident_address;
pub mod resident_patient;
pub mod service;
pub mod service_area;
pub mod service_category;
pub mod visit_check;
pub mod visit_record;
pub mod webhook_delivery;
pub mod webhook_endpoint;
