//! Shared test support: the store suite and the test gRPC Qdrant server.
#![allow(dead_code)]

pub mod qdrant_grpc;
pub mod suite;
