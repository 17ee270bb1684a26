//! Serving a queue in rounds: the shape shared by read-index rounds (`reads`) and followers'
//! refusal rounds (`refusals`). Whatever queues while every round slot is busy shares the next
//! round, so one round trip serves many callers; a round takes only what queued before it began.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

/// Waits for an item and a free slot (at most `rounds_in_flight_max` rounds run at once), takes
/// what queued behind the item without waiting (at most `round_items_max` in all), and runs
/// `round` on them as a task of its own; until the queue closes.
pub(crate) async fn serve<T, F, Fut>(
    mut queue: mpsc::Receiver<T>,
    rounds_in_flight_max: usize,
    round_items_max: usize,
    round: F,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    assert!(rounds_in_flight_max > 0 && round_items_max > 0, "rounds need room");
    let slots = Arc::new(Semaphore::new(rounds_in_flight_max));
    while let Some(first) = queue.recv().await {
        let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut items = vec![first];
        while items.len() < round_items_max {
            match queue.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        let work = round(items);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Items that queue while the one slot is busy go together into the next round, never
    /// into one that already began.
    #[tokio::test]
    async fn what_queues_during_a_round_shares_the_next() {
        let (sender, queue) = mpsc::channel(64);
        let (done, mut rounds) = mpsc::unbounded_channel();
        let running = Arc::new(AtomicUsize::new(0));
        let busy = running.clone();
        tokio::spawn(serve(queue, 1, 16, move |items: Vec<u32>| {
            let (done, busy) = (done.clone(), busy.clone());
            async move {
                assert_eq!(busy.fetch_add(1, Ordering::SeqCst), 0, "one round at a time");
                tokio::time::sleep(Duration::from_millis(50)).await;
                busy.fetch_sub(1, Ordering::SeqCst);
                let _ = done.send(items);
            }
        }));
        sender.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        for n in 2..=5 {
            sender.send(n).await.unwrap();
        }
        assert_eq!(rounds.recv().await.unwrap(), vec![1]);
        assert_eq!(rounds.recv().await.unwrap(), vec![2, 3, 4, 5]);
    }
}
