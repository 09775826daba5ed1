package property.kstreams;

import java.nio.ByteBuffer;
import java.util.Set;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The stateless front of the topology plus the late gate, one processor per input topic:
 * decode → validate → gate, each record leaving as one {@link Routed} value (a dead letter, a
 * late record, or the valid payload with its record timestamp set to the payload's event time, so
 * that the windows downstream count in event time).
 *
 * <p>The late gate is the project's "late in the log" rule (transforms/lateness.py): per input
 * partition, the stream time before a record is the largest event time of the records at lower
 * offsets; the record is late when that is at or past its hour window's end plus the allowed
 * lateness. Kafka Streams has no late-record output of its own (a window past its grace drops the
 * record and counts it in the dropped-records metric), so the gate is a processor with a
 * changelogged key-value store keyed by "topic/partition" (one task per input partition: the
 * store holds one entry per task).
 *
 * <p>Records at or past the run's stop offsets (bench.compare's end markers) are skipped and the
 * progress per partition is reported to {@link Progress}.
 */
final class Front implements FixedKeyProcessor<byte[], byte[], Routed> {
  static final String LATE_STAGE = "late_gate";
  static final String PIPELINE_VERSION = "0.1.0";

  private final boolean events;
  private final WireFormat.Reader reader;
  private final Schemas schemas;
  private final Rules rules;
  private final Set<String> eventTypes;
  private final Progress progress;
  private final String storeName;
  private FixedKeyProcessorContext<byte[], Routed> context;
  private KeyValueStore<String, Long> streamTime;

  record Rules(long windowMs, long allowedLatenessMs) {}

  Front(
      boolean events,
      WireFormat.Reader reader,
      Schemas schemas,
      Rules rules,
      Set<String> eventTypes,
      Progress progress,
      String storeName) {
    this.events = events;
    this.reader = reader;
    this.schemas = schemas;
    this.rules = rules;
    this.eventTypes = eventTypes;
    this.progress = progress;
    this.storeName = storeName;
  }

  @Override
  public void init(FixedKeyProcessorContext<byte[], Routed> context) {
    this.context = context;
    this.streamTime = context.getStateStore(storeName);
  }

  @Override
  public void process(FixedKeyRecord<byte[], byte[]> record) {
    RecordMetadata where = context.recordMetadata().orElseThrow();
    if (!progress.admit(where.topic(), where.partition(), where.offset())) {
      return;
    }
    GenericRecord payload;
    try {
      payload = reader.read(record.value());
    } catch (WireFormat.DecodeException e) {
      context.forward(record.withValue(deadLetter("decode", e.type, e.getMessage(), record, where)));
      return;
    }
    try {
      if (events) {
        property.kstreams.Rules.checkEvent(payload, eventTypes, System.currentTimeMillis());
      } else {
        property.kstreams.Rules.checkView(payload);
      }
    } catch (property.kstreams.Rules.Invalid e) {
      context.forward(
          record.withValue(deadLetter("validate", e.ruleId, e.getMessage(), record, where)));
      return;
    }
    long eventTime = (Long) payload.get("event_time");
    String partition = where.topic() + "/" + where.partition();
    Long before = streamTime.get(partition);
    long windowEnd = (Math.floorDiv(eventTime, rules.windowMs()) + 1) * rules.windowMs();
    long deadline = windowEnd + rules.allowedLatenessMs();
    if (before != null && before >= deadline) {
      context.forward(record.withValue(late(record, where, eventTime, windowEnd, before - deadline)));
      return;
    }
    if (before == null || eventTime > before) {
      streamTime.put(partition, eventTime);
    }
    context.forward(record.withValue(Routed.valid(payload)).withTimestamp(eventTime));
  }

  private Routed deadLetter(
      String stage,
      String type,
      String message,
      FixedKeyRecord<byte[], byte[]> record,
      RecordMetadata where) {
    GenericRecord letter = new GenericData.Record(schemas.deadLetter());
    letter.put("stage", stage);
    letter.put("error_type", type);
    letter.put("error_message", message);
    letter.put("key", bytes(record.key()));
    letter.put("value", bytes(record.value()));
    letter.put("topic", where.topic());
    letter.put("partition", where.partition());
    letter.put("offset", where.offset());
    letter.put("record_timestamp", record.timestamp());
    letter.put("pipeline_version", PIPELINE_VERSION);
    return Routed.deadLetter(letter);
  }

  private Routed late(
      FixedKeyRecord<byte[], byte[]> record,
      RecordMetadata where,
      long eventTime,
      long windowEnd,
      long lateBy) {
    Schema schema = schemas.lateRecord();
    GenericRecord late = new GenericData.Record(schema);
    late.put("topic", where.topic());
    late.put("partition", where.partition());
    late.put("offset", where.offset());
    late.put("key", bytes(record.key()));
    late.put("value", bytes(record.value()));
    late.put("record_timestamp", record.timestamp());
    late.put("event_time", eventTime);
    late.put("window_end", windowEnd);
    late.put("late_by_ms", lateBy);
    late.put("stage", LATE_STAGE);
    return Routed.late(late);
  }

  private static ByteBuffer bytes(byte[] b) {
    return b == null ? null : ByteBuffer.wrap(b);
  }
}
