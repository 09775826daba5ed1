package property.kstreams;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * How far the run got: the input records before the stop offsets are the run's input (records at
 * or after them, such as bench.compare's end markers, are skipped), counted with the wall-clock
 * times of the first and last; the partitions still short of their stop offset; and the last
 * moment any processor saw a record (the run ends only once that is quiet too). Shared by the
 * stream threads.
 */
final class Progress {
  private final Map<String, Long> stops;
  private final Map<String, Boolean> pending = new ConcurrentHashMap<>();
  final AtomicLong consumed = new AtomicLong();
  private volatile long firstMs = -1;
  private volatile long lastMs = -1;
  private volatile long lastActivityNanos = System.nanoTime();

  Progress(Map<String, Long> stops) {
    this.stops = Map.copyOf(stops);
    stops.forEach((where, end) -> {
      if (end > 0) {
        pending.put(where, true);
      }
    });
  }

  /** True for a record of the run's input (before its partition's stop offset). */
  boolean admit(String topic, int partition, long offset) {
    touch();
    String where = topic + "/" + partition;
    Long end = stops.get(where);
    if (end == null || offset >= end) {
      return false;
    }
    long now = System.currentTimeMillis();
    if (firstMs < 0) {
      synchronized (this) {
        if (firstMs < 0) {
          firstMs = now;
        }
      }
    }
    lastMs = now;
    consumed.incrementAndGet();
    if (offset + 1 >= end) {
      pending.remove(where);
    }
    return true;
  }

  void touch() {
    lastActivityNanos = System.nanoTime();
  }

  boolean inputDone() {
    return pending.isEmpty();
  }

  double quietSeconds() {
    return (System.nanoTime() - lastActivityNanos) / 1e9;
  }

  Double firstSeconds() {
    return firstMs < 0 ? null : firstMs / 1000.0;
  }

  Double lastSeconds() {
    return lastMs < 0 ? null : lastMs / 1000.0;
  }
}
