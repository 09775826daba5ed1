package property.kstreams;

import java.util.Map;
import org.apache.avro.Schema;

/**
 * The catalog's schemas by full name and id (from the run's arguments: bench/kstreams_peer.py
 * reads schemas/catalog.json), and each output's schema id.
 */
record Schemas(Map<Integer, Schema> byId, Map<String, Integer> idByName) {
  Schema named(String simpleName) {
    Integer id = idByName.get("property.events." + simpleName);
    if (id == null) {
      throw new IllegalArgumentException("the catalog has no schema " + simpleName);
    }
    return byId.get(id);
  }

  int id(String simpleName) {
    named(simpleName);
    return idByName.get("property.events." + simpleName);
  }

  Schema deadLetter() {
    return named("DeadLetter");
  }

  Schema lateRecord() {
    return named("LateRecord");
  }
}
