//! AdmissionReview <-> engine.
