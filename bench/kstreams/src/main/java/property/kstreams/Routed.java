package property.kstreams;

import org.apache.avro.generic.GenericRecord;

/** What the front made of one input record: where it goes, and the record to write or count. */
record Routed(Kind kind, GenericRecord record) {
  enum Kind {
    VALID,
    DEAD_LETTER,
    LATE
  }

  static Routed valid(GenericRecord payload) {
    return new Routed(Kind.VALID, payload);
  }

  static Routed deadLetter(GenericRecord letter) {
    return new Routed(Kind.DEAD_LETTER, letter);
  }

  static Routed late(GenericRecord late) {
    return new Routed(Kind.LATE, late);
  }

  boolean is(Kind k) {
    return kind == k;
  }
}
