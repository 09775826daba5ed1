package io.propertystreams.flink;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.rpc.RpcSystem;
import org.apache.flink.runtime.rpc.RpcSystemLoader;
import org.apache.flink.runtime.rpc.pekko.PekkoRpcSystemLoader;

/**
 * Flink's Pekko RPC system, loaded once per JVM and handed to every caller.
 *
 * <p>{@code RpcSystem.load} asks the loader of the lowest priority first; Flink's {@code
 * PekkoRpcSystemLoader} has priority 0 and, on every call, extracts its embedded Pekko jar to a
 * temporary file and loads it in a new class loader. Beam's Flink job server starts a MiniCluster,
 * and so loads an RPC system, for every job it runs: each job paid for loading, interpreting and
 * compiling the Pekko and Scala classes again. This loader (priority -1) asks Flink's loader once
 * and returns the same system to every caller, wrapped so that a MiniCluster closing "its" RPC
 * system (which would delete the jar and the class loader the next job needs) does nothing; the
 * system is closed when the JVM exits. The RPC services each MiniCluster starts from it are its
 * own, as before: only the classes are shared.
 */
public final class SharedRpcSystemLoader implements RpcSystemLoader {

  private static RpcSystem shared;

  private static synchronized RpcSystem shared(Configuration config) {
    if (shared == null) {
      RpcSystem loaded = new PekkoRpcSystemLoader().loadRpcSystem(config);
      Runtime.getRuntime()
          .addShutdownHook(new Thread(loaded::close, "close-shared-rpc-system"));
      shared = loaded;
    }
    return shared;
  }

  @Override
  public int getLoadPriority() {
    return -1;
  }

  @Override
  public RpcSystem loadRpcSystem(Configuration config) {
    RpcSystem target = shared(config);
    InvocationHandler handler =
        (proxy, method, args) -> {
          if (method.getName().equals("close") && method.getParameterCount() == 0) {
            return null; // shared: closed at JVM exit, not by one of its users
          }
          try {
            return method.invoke(target, args);
          } catch (InvocationTargetException e) {
            throw e.getCause();
          }
        };
    return (RpcSystem)
        Proxy.newProxyInstance(
            RpcSystem.class.getClassLoader(), new Class<?>[] {RpcSystem.class}, handler);
  }
}
