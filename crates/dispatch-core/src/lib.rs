//! yixin-dispatch-core: the pure dispatch code, shared by the dispatch
//! engine (its I/O shell in `yixin-dispatcher`) and the city simulator, so
//! a simulated decision is the engine's decision.
//!
//! - [`fleet`]: the nurses an instance knows, their positions and presence.
//! - [`eligibility`]: the one candidate rule (automatic and manual).
//! - [`qualification`]: the credentials gate (verified, in date, years,
//!   title, certificates), one of the candidate rule's facts.
//! - [`eta`]: the `EtaEstimator` port and the straight-line model.
//! - [`scoring`], [`matching`]: ranking, greedy choice, the batch assignment.
//! - [`booking`]: which nurse can take a booked visit, and bookable slots.
//! - [`decision`]: the engine's decisions as a state machine (events and the
//!   clock in, commands out).
//!
//! Must not touch: I/O, clocks, threads or an async runtime (the port's
//! `async fn` is only a signature).

pub mod booking;
pub mod decision;
pub mod eligibility;
pub mod eta;
pub mod fleet;
pub mod leases;
pub mod matching;
pub mod qualification;
pub mod quote;
pub mod scoring;
pub mod settings;

pub use decision::{Command, Decisions, EngineConfig, MAX_RETRY_MISSES, OrderFacts, Search};
pub use eligibility::{Ineligible, NurseFacts, covers, eligibility, is_stale};
pub use eta::{
    AreaEtaSettings, Eta, EtaError, EtaEstimator, EtaSettings, StraightLineConfig, StraightLineEta,
};
pub use fleet::{Fix, Fleet, PresenceRules};
pub use leases::{LeaseBook, LeaseTiming, LeaseView, Region, Wanted};
pub use matching::{
    BatchCost, CandidateLists, MatchingPolicy, PolicyKind, WaitingOrder, assign_batch,
    assign_greedy, best_candidate,
};
pub use qualification::{
    Need, Shortfall, explain, qualification, qualifies, visit_day, visit_time,
};
pub use quote::{Quote, QuoteReason, next_bookable, quote};
pub use scoring::{Candidate, ScoringWeights, rank};
pub use settings::InvalidSettings;
