//! A session's bounded queue towards its fan: what the logic says, in order, to the one task that
//! writes it out.
//!
//! A tokio `mpsc` channel would do the same, but it allocates a cache-padded channel and a first
//! block of 32 slots up front whatever its bound: some 1.3 KB for each of hundreds of thousands of
//! waiting fans who are sent a position every few seconds. This one is a lock, a short deque that
//! allocates on the first message, and two signals: about 200 bytes.
//!
//! Semantics follow `mpsc`: any number of senders and one receiver; the receiver sees `None` once
//! the queue is empty and every sender is gone; a send fails once the receiver is gone.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The sending half; cloning it adds a sender.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signals the receiver: a message was queued, or the last sender left.
    queued: Notify,
    /// Signals waiting senders: a message was taken, or the receiver left.
    taken: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    /// The most messages queued at once.
    capacity: usize,
    senders: usize,
    receiver_alive: bool,
}

/// A queue of at most `capacity` messages.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "a mailbox holds at least one message");
    let shared = Arc::new(Shared {
        state: Mutex::new(State { queue: VecDeque::new(), capacity, senders: 1, receiver_alive: true }),
        queued: Notify::new(),
        taken: Notify::new(),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the queue itself consistent (every operation
        // is one push or pop), so a poisoned lock is still a good one.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> Sender<T> {
    /// Queues `msg` now, or gives it back if the queue is full or the receiver is gone.
    pub fn try_send(&self, msg: T) -> Result<(), T> {
        self.try_send_or_merge(msg, |_, msg| Err(msg))
    }

    /// Queues `msg` now; if the queue is full, `merge` may fold it into the newest message queued
    /// (returning the message that takes that one's place, or `msg` back to refuse). Gives `msg`
    /// back if the receiver is gone or nothing took it.
    pub fn try_send_or_merge(&self, msg: T, merge: impl FnOnce(&T, T) -> Result<T, T>) -> Result<(), T> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(msg);
        }
        if state.queue.len() < state.capacity {
            state.queue.push_back(msg);
            drop(state);
            self.shared.queued.notify_one();
            return Ok(());
        }
        let newest = state.queue.back_mut().expect("a full queue holds a message");
        *newest = merge(newest, msg)?;
        Ok(())
    }

    /// Queues `msg`, waiting for room; gives it back if the receiver is gone.
    pub async fn send(&self, msg: T) -> Result<(), T> {
        let mut msg = msg;
        loop {
            // Registered before looking, so that a take between the look and the wait wakes it.
            let mut taken = pin!(self.shared.taken.notified());
            taken.as_mut().enable();
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(back) if !self.shared.lock().receiver_alive => return Err(back),
                Err(back) => msg = back,
            }
            taken.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        assert!(state.senders > 0, "a mailbox lost count of its senders");
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.queued.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next message, or `None` once the queue is empty and every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(msg) = state.queue.pop_front() {
                    drop(state);
                    self.shared.taken.notify_waiters();
                    return Some(msg);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            // `notify_one` keeps a permit when no one waits: a message queued after the look
            // above still wakes this wait.
            self.shared.queued.notified().await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.lock().receiver_alive = false;
        self.shared.taken.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_bound_holds() {
        let (tx, mut rx) = channel(2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert_eq!(tx.try_send(3), Err(3), "a full queue refuses");
        assert_eq!(rx.recv().await, Some(1));
        assert!(tx.try_send(3).is_ok());
        assert_eq!((rx.recv().await, rx.recv().await), (Some(2), Some(3)));
    }

    #[tokio::test]
    async fn a_full_queue_merges_into_its_newest_message_when_asked() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send_or_merge(30, |old, new| Ok(old + new)), Ok(()));
        assert_eq!(tx.try_send_or_merge(40, |_, new| Err(new)), Err(40), "a refused merge gives it back");
        assert_eq!((rx.recv().await, rx.recv().await), (Some(1), Some(32)));
        assert_eq!(tx.try_send_or_merge(5, |_, _| unreachable!("room in the queue")), Ok(()));
        assert_eq!(rx.recv().await, Some(5));
    }

    #[tokio::test]
    async fn the_receiver_ends_once_every_sender_left_and_the_queue_is_drained() {
        let (tx, mut rx) = channel(4);
        let other = tx.clone();
        tx.try_send("a").unwrap();
        drop(tx);
        other.try_send("b").unwrap();
        drop(other);
        assert_eq!((rx.recv().await, rx.recv().await, rx.recv().await), (Some("a"), Some("b"), None));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_message_and_for_the_last_sender_leaving() {
        let (tx, mut rx) = channel(1);
        let receiving = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(7).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), receiving).await.unwrap().unwrap();
        assert_eq!(got, (Some(7), None));
    }

    #[tokio::test]
    async fn a_send_waits_for_room_and_fails_once_the_receiver_is_gone() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let tx = Arc::new(tx);
        let sending = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sending.is_finished(), "the send waits while the queue is full");
        assert_eq!(rx.recv().await, Some(1));
        let sent = tokio::time::timeout(Duration::from_secs(5), sending).await.unwrap().unwrap();
        assert_eq!(sent, Ok(()));
        assert_eq!(rx.recv().await, Some(2));

        tx.try_send(3).unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(4).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        let refused = tokio::time::timeout(Duration::from_secs(5), blocked).await.unwrap().unwrap();
        assert_eq!(refused, Err(4), "a gone receiver gives the message back");
        assert_eq!(tx.try_send(5), Err(5));
    }
}
