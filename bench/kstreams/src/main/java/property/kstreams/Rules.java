package property.kstreams;

import java.util.Set;
import java.util.regex.Pattern;
import org.apache.avro.generic.GenericRecord;

/**
 * The contract's validity rules (transforms/validation.py, docs/contract.md), checked in the same
 * order, each failure named by the same rule id: the first broken rule is the dead letter's
 * error_type.
 */
final class Rules {
  static final long MAX_PRICE = 1_000_000_000L;
  static final long EVENT_TIME_HORIZON_MS = 60 * 60 * 1000L;
  private static final Pattern ZIP_CODE = Pattern.compile("[0-9]{5}");

  /** A broken rule: {@code ruleId} is the dead letter's error_type. */
  static final class Invalid extends Exception {
    final String ruleId;

    Invalid(String ruleId, String message) {
      super(message);
      this.ruleId = ruleId;
    }
  }

  private Rules() {}

  static void checkIds(GenericRecord record, String... fields) throws Invalid {
    for (String field : fields) {
      Object value = record.get(field);
      if (value == null || value.toString().strip().isEmpty()) {
        throw new Invalid("non_empty_id", field + " is empty: '" + value + "'");
      }
    }
  }

  static void checkEvent(GenericRecord event, Set<String> eventTypes, long nowMs)
      throws Invalid {
    checkIds(event, "event_id", "property_id");
    Object type = event.get("event_type");
    if (type == null || !eventTypes.contains(type.toString())) {
      throw new Invalid("known_event_type", "event_type " + type + " is not a contract symbol");
    }
    Object zip = event.get("zip_code");
    if (zip == null || !ZIP_CODE.matcher(zip.toString()).matches()) {
      throw new Invalid("zip_code_format", "zip_code '" + zip + "' is not five digits");
    }
    long price = (Long) event.get("price");
    if (price <= 0 || price > MAX_PRICE) {
      throw new Invalid("price_range", "price " + price + " is not in (0, " + MAX_PRICE + "]");
    }
    long eventTime = (Long) event.get("event_time");
    long ahead = eventTime - nowMs;
    if (ahead > EVENT_TIME_HORIZON_MS) {
      throw new Invalid(
          "event_time_horizon",
          "event_time " + eventTime + " is " + ahead + " ms ahead of the pipeline clock " + nowMs
              + " (at most " + EVENT_TIME_HORIZON_MS + " ms allowed)");
    }
  }

  static void checkView(GenericRecord view) throws Invalid {
    checkIds(view, "view_id", "user_id", "property_id");
  }
}
