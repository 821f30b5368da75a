package io.kvass.cluster;

import io.kvass.cluster.cli.CliException;
import io.kvass.cluster.cli.GenerateCommand;
import io.kvass.cluster.cli.ServeCommand;
import io.kvass.worker.model.ModelLoadException;

/** The {@code kvass} command: {@code serve} and {@code generate}. */
public final class Main {
    private static final String USAGE = """
            usage: kvass <command> [flags]
              serve     --model DIR [--served-model-name NAME] [--host H] [--port 8000] [--api-key KEY]
                        [--device cpu|cuda] [--max-model-len N] [--max-num-seqs N] [--max-num-batched-tokens N]
                        [--block-size 16] [--kv-cache-memory BYTES | --gpu-memory-utilization F] [--threads N]
                        [--cpu-weights auto|hugepages|mmap] [--cpu-weight-format packed|bf16]
                        [--max-waiting N] [--max-body-size BYTES] [--header-timeout 20s] [--body-timeout 60s]
                        [--max-connections N] [--max-connections-per-client N]
                        [--tool-call-parser hermes|llama3_json|mistral|auto]
                        [--scheduling-policy fcfs|priority]
                        [--no-enable-prefix-caching] [--cluster-host H] [--cluster-port P] [--seed-node URI]...
                        [--enable-lora [--lora-modules NAME=DIR...] [--max-loras N] [--max-cpu-loras N]
                        [--max-lora-rank N] [--lora-allowed-roots DIR...]] [--config FILE.conf]
                        OpenAI-compatible server (a one-node cluster unless --seed-node is given)
              generate  --model DIR (--prompt TEXT | --prompt-ids 1,2,3)... [--max-tokens N] [--temperature T] [--json]
                        [--adapter DIR [--max-lora-rank N]]
                        [--device cpu|cuda] [--gpu-memory-utilization F] [--cpu-weights auto|hugepages|mmap]
                        [--cpu-weight-format packed|bf16]
            """;

    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("help")) {
            System.out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        try {
            switch (args[0]) {
                case "generate" -> GenerateCommand.run(args, System.out);
                case "serve" -> ServeCommand.run(args);
                default -> throw new CliException("unknown command '" + args[0] + "'\n" + USAGE);
            }
            return 0;
        } catch (CliException | ModelLoadException | IllegalArgumentException e) {
            System.err.println("kvass: " + e.getMessage());
            return 2;
        }
    }
}
