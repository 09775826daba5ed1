package property.kstreams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.Stores;

/**
 * The property topology the Kafka Streams way, as the seed's production guide builds it: one
 * StreamsBuilder, both input topics as KStreams of bytes, every output a sink topic in the
 * Confluent wire format with the project's schema ids. A benchmark peer of the Beam pipeline
 * (bench/kstreams_peer.py runs it; bench/compare.py and bench/latency.py measure it).
 *
 * <p>Steps (what differs from the Beam pipeline is said where it differs):
 *
 * <ul>
 *   <li>front, per input topic ({@link Front}): decode → DLQ (stage decode), validate → DLQ
 *       (stage validate, the rule id), the late gate ("late in the log", per input partition) →
 *       late topic; valid records continue with their timestamp set to the payload's event time;
 *       routed by {@code split().branch()} (the seed's {@code branch()}, removed in 4.x);
 *   <li>events: price above the threshold → high-value topic; LISTING_UPDATED → enriched topic as
 *       FALLBACK (no market-data service: the benchmark's other peers do none either); counts by
 *       zip: {@code groupBy(zip)} (a repartition topic) + {@code aggregate} (count and the latest
 *       event time: the seed's {@code count()} plus the field ZipCount carries), the KTable's
 *       updates as the output;
 *   <li>views, fraud (the seed's pattern): {@code groupByKey} (views are keyed by user) +
 *       {@code TimeWindows} of the fraud window + count, the windowed KTable's updates filtered
 *       by {@code count > threshold}: one alert per update past the threshold, so a user's window
 *       alerts again at each later update that reaches the sink (how many depends on the record
 *       cache and the commit interval);
 *   <li>views, hourly: {@code groupBy(property_id)} (a repartition topic: the seed's {@code
 *       groupByKey} would count per user, the contract keys views by user) + 1 h {@code
 *       TimeWindows} + count, no {@code suppress} (the seed has none): the windowed KTable's
 *       updates are the output, pane "EARLY". Kafka Streams judges a window's grace against the
 *       stream time of the repartitioned task, which merges every input partition (the largest
 *       timestamp seen): a record the per-partition gate let through is dropped when other
 *       partitions have moved that stream time past its window's end plus grace (counted in Kafka
 *       Streams' dropped-records metric, reported in the run's summary).
 * </ul>
 *
 * <p>Grace: the seed's {@code TimeWindows.of(size)} is gone in Kafka Streams 4; it meant a grace
 * of 24 h minus the size, which is the default here ({@code ofSizeAndGrace}); {@code grace_s}
 * ({@code {"hourly": s, "fraud": s}}) overrides it, e.g. with the contract's 10-minute lateness,
 * to see what a short grace loses on a replayed backlog.
 *
 * <p>Usage: {@code java -jar kstreams-peer-all.jar <arguments.json>} (bench/kstreams_peer.py
 * writes the file). It runs until every input partition reached its stop offset, the repartition
 * topics are consumed to their ends (committed offsets), and no record came for {@code quiet_s};
 * then closes (flushing the caches: the last KTable updates) and prints one JSON line: records
 * consumed, first/last consumption times, Kafka Streams' dropped-records total.
 */
public final class PropertyTopology {
  private static final ObjectMapper JSON = new ObjectMapper();

  private PropertyTopology() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: java -jar kstreams-peer-all.jar <arguments.json>");
      System.exit(2);
    }
    JsonNode arguments = JSON.readTree(new File(args[0]));
    ObjectNode summary = run(arguments);
    System.out.println(JSON.writeValueAsString(summary));
    System.out.flush();
    System.exit(0);
  }

  static ObjectNode run(JsonNode arguments) throws Exception {
    Schemas schemas = schemas(arguments.get("schemas"));
    Map<String, Long> stops = new HashMap<>();
    for (JsonNode stop : arguments.get("stop_offsets")) {
      stops.put(stop.get(0).asText() + "/" + stop.get(1).asInt(), stop.get(2).asLong());
    }
    Progress progress = new Progress(stops);
    String appId = text(arguments, "application_id", "kstreams-bench-" + System.nanoTime());
    Path stateDir = Files.createTempDirectory("kstreams-state-");
    Topology topology = build(arguments, schemas, progress);
    KafkaStreams streams = new KafkaStreams(topology, properties(arguments, appId, stateDir));
    Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(30))));
    long timeoutMs = (long) (arguments.path("timeout_s").asDouble(3600) * 1000);
    double quietS = arguments.path("quiet_s").asDouble(0.5);
    String bootstrap = arguments.get("bootstrap").asText();
    streams.start();
    long deadline = System.currentTimeMillis() + timeoutMs;
    boolean trace = arguments.path("trace").asBoolean(false);
    long lastTrace = 0;
    try (Admin admin =
        Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      while (true) {
        KafkaStreams.State state = streams.state();
        if (state == KafkaStreams.State.ERROR
            || state == KafkaStreams.State.PENDING_ERROR
            || state == KafkaStreams.State.NOT_RUNNING) {
          throw new IllegalStateException("Kafka Streams stopped: " + state);
        }
        if (System.currentTimeMillis() > deadline) {
          throw new IllegalStateException(
              "input not consumed after " + timeoutMs / 1000 + " s: " + progress.consumed.get());
        }
        if (progress.inputDone()
            && progress.quietSeconds() >= quietS
            && repartitionsConsumed(admin, appId)) {
          break;
        }
        Thread.sleep(100);
        if (trace && System.currentTimeMillis() - lastTrace >= 1000) {
          lastTrace = System.currentTimeMillis();
          System.err.printf(
              "kstreams: %s, %d consumed, input done %b%n",
              state, progress.consumed.get(), progress.inputDone());
        }
      }
    }
    double dropped = 0;
    for (var metric : streams.metrics().entrySet()) {
      if (metric.getKey().name().equals("dropped-records-total")) {
        Object value = metric.getValue().metricValue();
        if (value instanceof Number n) {
          dropped += n.doubleValue();
        }
      }
    }
    if (!streams.close(Duration.ofSeconds(120))) {
      throw new IllegalStateException("Kafka Streams did not close within 120 s");
    }
    streams.cleanUp();
    deleteTree(stateDir.toFile());
    if (arguments.path("delete_internal_topics").asBoolean(true)) {
      deleteInternalTopics(bootstrap, appId);
    }
    ObjectNode out = JSON.createObjectNode();
    out.put("consumed", progress.consumed.get());
    out.put("first_consumed_s", progress.firstSeconds());
    out.put("last_consumed_s", progress.lastSeconds());
    out.put("dropped_records", (long) dropped);
    out.put("closed_s", System.currentTimeMillis() / 1000.0);
    out.put("threads", threads(arguments));
    return out;
  }

  /** The topology (see the class comment). */
  static Topology build(JsonNode arguments, Schemas schemas, Progress progress) {
    JsonNode inputs = arguments.get("inputs");
    JsonNode outputs = arguments.get("outputs");
    JsonNode rulesArg = arguments.path("rules");
    long windowMs = rulesArg.path("window_size_s").asLong(3600) * 1000;
    long latenessMs = rulesArg.path("allowed_lateness_s").asLong(600) * 1000;
    long fraudThreshold = rulesArg.path("fraud_threshold").asLong(50);
    long fraudWindowMs = rulesArg.path("fraud_window_s").asLong(600) * 1000;
    long highValue = rulesArg.path("high_value_threshold").asLong(500_000);
    // The seed's TimeWindows.of(size) had a grace of 24 h minus the size; override per window.
    long hourlyGraceMs = graceMs(arguments, "hourly", windowMs);
    long fraudGraceMs = graceMs(arguments, "fraud", fraudWindowMs);
    WireFormat wire = new WireFormat(schemas.byId());
    Schema eventSchema = schemas.named("PropertyEvent");
    Schema viewSchema = schemas.named("PropertyView");
    Schema enrichedSchema = schemas.named("EnrichedPropertyEvent");
    Schema zipSchema = schemas.named("ZipCount");
    Schema countSchema = schemas.named("PropertyViewCount");
    Schema alertSchema = schemas.named("Alert");
    Set<String> eventTypes = new HashSet<>(eventSchema.getField("event_type").schema().getEnumSymbols());
    Serde<byte[]> keys = Serdes.ByteArray();
    Serde<GenericRecord> eventSerde = wire.serde(eventSchema, schemas.id("PropertyEvent"));
    Serde<GenericRecord> viewSerde = wire.serde(viewSchema, schemas.id("PropertyView"));
    Serde<GenericRecord> zipSerde = wire.serde(zipSchema, schemas.id("ZipCount"));
    Serde<GenericRecord> dlqSerde = wire.serde(schemas.deadLetter(), schemas.id("DeadLetter"));
    Serde<GenericRecord> lateSerde = wire.serde(schemas.lateRecord(), schemas.id("LateRecord"));
    Front.Rules gate = new Front.Rules(windowMs, latenessMs);

    StreamsBuilder builder = new StreamsBuilder();
    Map<String, KStream<byte[], GenericRecord>> valid = new LinkedHashMap<>();
    for (String input : new String[] {"events", "views"}) {
      boolean isEvents = input.equals("events");
      String store = "gate-" + input;
      builder.addStateStore(
          Stores.keyValueStoreBuilder(
              Stores.inMemoryKeyValueStore(store), Serdes.String(), Serdes.Long()));
      Schema reader = isEvents ? eventSchema : viewSchema;
      Map<String, KStream<byte[], Routed>> routes =
          builder.stream(inputs.get(input).asText(), Consumed.with(keys, Serdes.ByteArray()))
              .processValues(
                  () ->
                      new Front(
                          isEvents, wire.new Reader(reader), schemas, gate, eventTypes, progress,
                          store),
                  Named.as("front-" + input),
                  store)
              .split(Named.as(input + "-"))
              .branch((k, v) -> v.is(Routed.Kind.DEAD_LETTER), Branched.as("dlq"))
              .branch((k, v) -> v.is(Routed.Kind.LATE), Branched.as("late"))
              .defaultBranch(Branched.as("valid"));
      routes.get(input + "-dlq").mapValues(Routed::record)
          .to(outputs.get("dead_letters").asText(), Produced.with(keys, dlqSerde));
      routes.get(input + "-late").mapValues(Routed::record)
          .to(outputs.get("late").asText(), Produced.with(keys, lateSerde));
      valid.put(input, routes.get(input + "-valid").mapValues(Routed::record));
    }

    // Events: high value, enrichment (FALLBACK), counts by zip.
    KStream<byte[], GenericRecord> events = valid.get("events");
    events
        .filter((k, e) -> (Long) e.get("price") > highValue)
        .selectKey((k, e) -> utf8(e.get("property_id")))
        .to(outputs.get("high_value").asText(), Produced.with(keys, eventSerde));
    Serde<GenericRecord> enrichedSerde =
        wire.serde(enrichedSchema, schemas.id("EnrichedPropertyEvent"));
    events
        .filter((k, e) -> e.get("event_type").toString().equals("LISTING_UPDATED"))
        .mapValues(e -> fallback(e, enrichedSchema))
        .selectKey((k, e) -> utf8(e.get("property_id")))
        .to(outputs.get("enriched").asText(), Produced.with(keys, enrichedSerde));
    events
        .groupBy((k, e) -> utf8(e.get("zip_code")), Grouped.with("zip", keys, eventSerde))
        .aggregate(
            () -> zipCount(zipSchema, "", 0, Long.MIN_VALUE),
            (zip, e, agg) ->
                zipCount(
                    zipSchema,
                    e.get("zip_code").toString(),
                    (Long) agg.get("count") + 1,
                    Math.max((Long) agg.get("last_event_time"), (Long) e.get("event_time"))),
            Named.as("count-by-zip"),
            Materialized.<byte[], GenericRecord, org.apache.kafka.streams.state.KeyValueStore<
                        org.apache.kafka.common.utils.Bytes, byte[]>>as("zip-counts")
                .withKeySerde(keys)
                .withValueSerde(zipSerde))
        .toStream()
        .to(outputs.get("counts_by_zip").asText(), Produced.with(keys, zipSerde));

    // Views: fraud alerts (the seed's windowed count filtered by count > threshold).
    KStream<byte[], GenericRecord> views = valid.get("views");
    Serde<GenericRecord> alertSerde = wire.serde(alertSchema, schemas.id("Alert"));
    views
        .groupByKey(Grouped.with(keys, viewSerde))
        .windowedBy(
            TimeWindows.ofSizeAndGrace(
                Duration.ofMillis(fraudWindowMs), Duration.ofMillis(fraudGraceMs)))
        .count(Named.as("views-per-user"))
        .toStream()
        .filter((user, n) -> n != null && n > fraudThreshold)
        .map(
            (user, n) -> {
              String userId = new String(user.key(), StandardCharsets.UTF_8);
              long start = user.window().start();
              return KeyValue.pair(
                  user.key(),
                  alert(alertSchema, userId, start, start + fraudWindowMs, n, fraudThreshold));
            })
        .to(outputs.get("alerts").asText(), Produced.with(keys, alertSerde));

    // Views: hourly counts per property (1 h windows and their grace).
    Serde<GenericRecord> countSerde = wire.serde(countSchema, schemas.id("PropertyViewCount"));
    views
        .groupBy((k, v) -> utf8(v.get("property_id")), Grouped.with("hourly", keys, viewSerde))
        .windowedBy(
            TimeWindows.ofSizeAndGrace(Duration.ofMillis(windowMs), Duration.ofMillis(hourlyGraceMs)))
        .count(Named.as("views-per-property-hour"))
        .toStream()
        .map(
            (property, n) ->
                KeyValue.pair(
                    property.key(),
                    viewCount(
                        countSchema,
                        new String(property.key(), StandardCharsets.UTF_8),
                        property.window().start(),
                        property.window().start() + windowMs,
                        n)))
        .to(outputs.get("views_hourly").asText(), Produced.with(keys, countSerde));
    return builder.build();
  }

  // ---- records of the output schemas ----------------------------------------------------------

  static GenericRecord fallback(GenericRecord event, Schema enriched) {
    GenericRecord out = new GenericData.Record(enriched);
    for (Schema.Field f : event.getSchema().getFields()) {
      out.put(f.name(), event.get(f.name()));
    }
    // Market fields stay null (their default).
    out.put(
        "enrichment_status",
        new GenericData.EnumSymbol(enriched.getField("enrichment_status").schema(), "FALLBACK"));
    out.put("enrichment_error", "no market-data service configured");
    return out;
  }

  static GenericRecord zipCount(Schema schema, String zip, long count, long last) {
    GenericRecord out = new GenericData.Record(schema);
    out.put("zip_code", zip);
    out.put("count", count);
    out.put("last_event_time", last);
    return out;
  }

  static GenericRecord alert(
      Schema schema, String user, long start, long end, long count, long threshold) {
    GenericRecord out = new GenericData.Record(schema);
    out.put("alert_id", user + ":" + start);
    out.put("user_id", user);
    out.put("window_start", start);
    out.put("window_end", end);
    out.put("view_count", count);
    out.put(
        "reason",
        "excessive_viewing: more than " + threshold + " views in " + (end - start) / 1000 + " s");
    return out;
  }

  static GenericRecord viewCount(Schema schema, String property, long start, long end, long n) {
    GenericRecord out = new GenericData.Record(schema);
    out.put("property_id", property);
    out.put("window_start", start);
    out.put("window_end", end);
    out.put("view_count", n);
    out.put("pane", "EARLY");
    return out;
  }

  // ---- configuration --------------------------------------------------------------------------

  static Schemas schemas(JsonNode catalog) {
    Map<Integer, Schema> byId = new HashMap<>();
    Map<String, Integer> idByName = new HashMap<>();
    for (JsonNode entry : catalog) {
      int id = entry.get("id").asInt();
      Schema schema = new Schema.Parser().parse(entry.get("schema").toString());
      byId.put(id, schema);
      // The latest version of a name writes (schemas.Catalog.latest, marked by the caller).
      if (entry.path("latest").asBoolean(false)) {
        idByName.put(schema.getFullName(), id);
      }
    }
    return new Schemas(byId, idByName);
  }

  static Properties properties(JsonNode arguments, String appId, Path stateDir) {
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, arguments.get("bootstrap").asText());
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    // The seed's tuning: threads = min(partitions, cores), commit every second, a 64 MB cache.
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads(arguments));
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, arguments.path("commit_interval_ms").asInt(1000));
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 64L * 1024 * 1024);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // The other peers' client settings (bench.raw_loop, bench.quix_topology).
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_BYTES_CONFIG), 52_428_800);
    props.put(
        StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 10_485_760);
    props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 20);
    props.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1_000_000);
    props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
    arguments
        .path("producer_extra")
        .properties()
        .forEach(e -> props.put(StreamsConfig.producerPrefix(e.getKey()), e.getValue().asText()));
    arguments
        .path("streams_extra")
        .properties()
        .forEach(e -> props.put(e.getKey(), e.getValue().asText()));
    return props;
  }

  /**
   * The grace of the {@code window} windows ("hourly", "fraud"): {@code grace_s.<window>} when the
   * arguments give it, else what the seed's {@code TimeWindows.of(size)} gave (Kafka Streams 3.x:
   * 24 h minus the size, at least 0).
   */
  static long graceMs(JsonNode arguments, String window, long sizeMs) {
    JsonNode given = arguments.path("grace_s").get(window);
    if (given != null && !given.isNull()) {
      return given.asLong() * 1000;
    }
    return Math.max(Duration.ofHours(24).toMillis() - sizeMs, 0);
  }

  /** Stream threads: the seed's min(partitions, cores), at most 4 (the inputs' partitions). */
  static int threads(JsonNode arguments) {
    return arguments.path("threads").asInt(Math.min(4, Runtime.getRuntime().availableProcessors()));
  }

  /** True when every repartition topic of the application is consumed (committed) to its end. */
  static boolean repartitionsConsumed(Admin admin, String appId) throws Exception {
    Set<String> topics = new HashSet<>();
    for (String name : admin.listTopics().names().get(30, TimeUnit.SECONDS)) {
      if (name.startsWith(appId + "-") && name.endsWith("-repartition")) {
        topics.add(name);
      }
    }
    Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
    for (var description : admin.describeTopics(topics).allTopicNames().get(30, TimeUnit.SECONDS).values()) {
      for (var p : description.partitions()) {
        latest.put(new TopicPartition(description.name(), p.partition()), OffsetSpec.latest());
      }
    }
    var ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
    Map<TopicPartition, OffsetAndMetadata> committed =
        admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    for (var end : ends.entrySet()) {
      long high = end.getValue().offset();
      OffsetAndMetadata at = committed.get(end.getKey());
      if (high > 0 && (at == null || at.offset() < high)) {
        return false;
      }
    }
    return true;
  }

  /** Deletes the application's repartition and changelog topics (named after its id). */
  static void deleteInternalTopics(String bootstrap, String appId) throws Exception {
    try (Admin admin =
        Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      Set<String> internal = new HashSet<>();
      for (String name : admin.listTopics().names().get(30, TimeUnit.SECONDS)) {
        if (name.startsWith(appId + "-")) {
          internal.add(name);
        }
      }
      admin.deleteTopics(internal).all().get(60, TimeUnit.SECONDS);
    }
  }

  private static byte[] utf8(Object value) {
    return value.toString().getBytes(StandardCharsets.UTF_8);
  }

  private static String text(JsonNode node, String field, String otherwise) {
    JsonNode value = node.get(field);
    return value == null || value.isNull() ? otherwise : value.asText();
  }

  private static void deleteTree(File file) {
    File[] children = file.listFiles();
    if (children != null) {
      for (File child : children) {
        deleteTree(child);
      }
    }
    file.delete();
  }
}
