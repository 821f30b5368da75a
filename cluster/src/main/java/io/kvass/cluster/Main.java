package io.kvass.cluster;

import io.kvass.cluster.cli.CliException;
import io.kvass.cluster.cli.GenerateCommand;
import io.kvass.worker.model.ModelLoadException;

/** The {@code kvass} command: {@code serve} and {@code generate}. */
public final class Main {
    private static final String USAGE = """
            usage: kvass <command> [flags]
              serve     --model DIR [--port 8000] ...   OpenAI-compatible server (one-node cluster by default)
              generate  --model DIR (--prompt TEXT | --prompt-ids 1,2,3)... [--max-tokens N] [--temperature T] [--json]
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
                default -> throw new CliException("unknown command '" + args[0] + "'\n" + USAGE);
            }
            return 0;
        } catch (CliException | ModelLoadException | IllegalArgumentException e) {
            System.err.println("kvass: " + e.getMessage());
            return 2;
        }
    }
}
