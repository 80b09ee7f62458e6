//! Running a route's plugins over a batch (to come).
