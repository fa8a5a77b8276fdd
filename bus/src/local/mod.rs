//! The in-process bus: every seam implemented with tokio primitives, for
//! the single binary. It keeps the traits' guarantees within one process;
//! nothing in it survives the process, which is why acknowledgements to
//! clients wait for the store, never for the bus.

mod pubsub;
mod queue;
mod state;

pub use pubsub::LocalPubSub;
pub use queue::LocalQueue;
pub use state::LocalState;
