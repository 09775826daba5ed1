package property.kstreams;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Avro in the Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary),
 * without Confluent's serde jars (not on Maven Central): the writer schema of an id comes from
 * the project's local catalog (schemas/catalog.json, passed in by bench/kstreams_peer.py), as the
 * project does without a schema registry.
 *
 * <p>Decoding names each malformation as transforms/codec/errors.py does (its DecodeError subclasses),
 * so a dead letter carries the same error type: MissingValueError, TruncatedHeaderError,
 * BadMagicByteError, UnknownSchemaIdError, IncompatibleSchemaError, CorruptBodyError,
 * TrailingBytesError.
 */
final class WireFormat {
  static final int HEADER_SIZE = 5;

  /** A value that cannot be decoded; {@code type} is the dead letter's error_type. */
  static final class DecodeException extends Exception {
    final String type;

    DecodeException(String type, String message) {
      super(message);
      this.type = type;
    }
  }

  private final Map<Integer, Schema> writers;

  WireFormat(Map<Integer, Schema> writers) {
    this.writers = Map.copyOf(writers);
  }

  /** Reads wire-format values into one reader schema, resolving each writer id once. */
  final class Reader {
    private final Schema reader;
    // reader, or a DecodeException. Concurrent: one serde (so one Reader) serves every stream
    // thread, and two threads meeting a new schema id at once broke a HashMap
    // (ConcurrentModificationException in computeIfAbsent, the peer failed).
    private final Map<Integer, Object> byId = new ConcurrentHashMap<>();

    Reader(Schema reader) {
      this.reader = reader;
    }

    GenericRecord read(byte[] value) throws DecodeException {
      if (value == null) {
        throw new DecodeException("MissingValueError", "the record has no value");
      }
      if (value.length < HEADER_SIZE) {
        throw new DecodeException(
            "TruncatedHeaderError", value.length + " bytes: shorter than the 5-byte header");
      }
      if (value[0] != 0) {
        throw new DecodeException("BadMagicByteError", "magic byte " + value[0] + ", expected 0");
      }
      int id = ByteBuffer.wrap(value, 1, 4).getInt();
      Object found = byId.computeIfAbsent(id, this::resolve);
      if (found instanceof DecodeException e) {
        throw new DecodeException(e.type, e.getMessage());
      }
      @SuppressWarnings("unchecked")
      GenericDatumReader<GenericRecord> datumReader = (GenericDatumReader<GenericRecord>) found;
      BinaryDecoder decoder =
          DecoderFactory.get().binaryDecoder(value, HEADER_SIZE, value.length - HEADER_SIZE, null);
      GenericRecord record;
      try {
        record = datumReader.read(null, decoder);
      } catch (IOException | RuntimeException e) {
        throw new DecodeException(
            "CorruptBodyError",
            "body of " + (value.length - HEADER_SIZE) + " bytes is not a " + reader.getFullName()
                + " (schema id " + id + "): " + e);
      }
      try {
        if (!decoder.isEnd()) {
          throw new DecodeException(
              "TrailingBytesError",
              "bytes left after a complete " + reader.getFullName() + " (schema id " + id + ")");
        }
      } catch (IOException e) {
        throw new DecodeException("CorruptBodyError", e.toString());
      }
      return record;
    }

    private Object resolve(int id) {
      Schema writer = writers.get(id);
      if (writer == null) {
        return new DecodeException("UnknownSchemaIdError", "no schema with id " + id);
      }
      var compatibility =
          SchemaCompatibility.checkReaderWriterCompatibility(reader, writer).getType();
      if (!writer.getFullName().equals(reader.getFullName())
          || compatibility != SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
        return new DecodeException(
            "IncompatibleSchemaError",
            "writer schema id " + id + " (" + writer.getFullName() + ") cannot be read as "
                + reader.getFullName());
      }
      return new GenericDatumReader<GenericRecord>(writer, reader);
    }
  }

  /** Encodes records of one schema with its catalog id (the project's encoder, in Java). */
  static byte[] encode(GenericDatumWriter<GenericRecord> writer, int id, GenericRecord record) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(256);
    out.write(0);
    out.write(id >>> 24);
    out.write(id >>> 16);
    out.write(id >>> 8);
    out.write(id);
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
    try {
      writer.write(record, encoder);
      encoder.flush();
    } catch (IOException e) {
      throw new IllegalStateException("encoding a " + record.getSchema().getFullName(), e);
    }
    return out.toByteArray();
  }

  /**
   * A Serde for records of one schema: writes with its id, reads back with the same schema. For
   * the outputs and the repartition topics and state stores of the aggregations.
   */
  Serde<GenericRecord> serde(Schema schema, int id) {
    GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(schema);
    Reader reader = new Reader(schema);
    Serializer<GenericRecord> serializer =
        (topic, record) -> record == null ? null : encode(writer, id, record);
    Deserializer<GenericRecord> deserializer =
        (topic, bytes) -> {
          if (bytes == null) {
            return null;
          }
          try {
            return reader.read(bytes);
          } catch (DecodeException e) {
            throw new IllegalStateException("own record on " + topic + ": " + e.getMessage(), e);
          }
        };
    return Serdes.serdeFrom(serializer, deserializer);
  }
}
