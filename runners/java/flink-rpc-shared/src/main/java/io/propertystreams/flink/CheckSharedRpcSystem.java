package io.propertystreams.flink;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.rpc.RpcService;
import org.apache.flink.runtime.rpc.RpcSystem;

/**
 * Loads Flink's RPC system twice the way a MiniCluster does (the first one closed before the
 * second load) and prints {@code shared} when both came from one class loader and the second
 * still starts an RPC service, {@code separate} otherwise. Run by
 * tests/runners/test_flink_rpc_shared.py on the job server's classpath.
 */
public final class CheckSharedRpcSystem {

  private CheckSharedRpcSystem() {}

  public static void main(String[] args) throws Exception {
    Configuration config = new Configuration();
    RpcSystem first = RpcSystem.load(config);
    ClassLoader firstLoader = first.localServiceBuilder(config).getClass().getClassLoader();
    first.close();
    RpcSystem second = RpcSystem.load(config);
    RpcService service = second.localServiceBuilder(config).createAndStart();
    ClassLoader secondLoader = service.getClass().getClassLoader();
    service.closeAsync().get();
    second.close();
    System.out.println(firstLoader == secondLoader ? "shared" : "separate");
  }
}
