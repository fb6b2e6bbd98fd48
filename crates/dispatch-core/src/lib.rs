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
//! - [`forecast`], [`reposition`]: demand per H3 cell and hour and the mix
//!   of kinds of orders (skill sets) by hour learnt from history, and where
//!   idle nurses should wait to cover it.
//! - [`chain`]: chained offers: a nurse finishing a visit soon as a
//!   candidate, her next job, and the overrun rule.
//! - [`booking`]: which nurse can take a booked visit, and bookable slots.
//! - [`decision`]: the engine's decisions as a state machine (events and the
//!   clock in, commands out).
//!
//! Must not touch: I/O, clocks, threads or an async runtime (the port's
//! `async fn` is only a signature).

pub mod booking;
pub mod chain;
pub mod decision;
pub mod eligibility;
pub mod eta;
pub mod fleet;
pub mod forecast;
pub mod leases;
pub mod matching;
pub mod qualification;
pub mod quote;
pub mod reposition;
pub mod scoring;
pub mod settings;

pub use chain::{ChainRules, MAX_NEXT_JOBS, NextJob, Visit, next_arrival, predicted_end};
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
    risk::{RiskModel, assign_batch_risk},
};
pub use qualification::{
    Need, Shortfall, explain, qualification, qualifies, visit_day, visit_time,
};
pub use quote::{Quote, QuoteReason, next_bookable, quote};
pub use scoring::{Candidate, ScoringWeights, rank};
pub use settings::InvalidSettings;
