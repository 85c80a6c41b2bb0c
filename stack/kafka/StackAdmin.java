import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Used by scripts/stack.sh (compiled there with javac against .cache/kafka/libs).
 * One JVM instead of one kafka-topics run per topic: waits until the broker
 * answers admin requests, then creates the missing topics (like
 * kafka-topics --create --if-not-exists), replication factor 1. On a broker it
 * started (BROKER_PID given), it then waits until the group coordinator and the
 * producer-id allocation answer: a fresh broker creates __consumer_offsets on the
 * first group request, and a fresh or restarted one fetches producer ids from the
 * controller on the first InitProducerId that needs a new id; clients that arrive
 * meanwhile get retriable "coordinator is loading" errors, which kafkajs logs as
 * errors with stack traces.
 *
 * Usage: StackAdmin BOOTSTRAP TIMEOUT_SECONDS BROKER_PID|- name:partitions...
 * BROKER_PID: give up early if that process dies ("-": do not watch one).
 * Exit codes: 0 ready and topics present, 1 timeout/error, 2 usage, 3 broker died.
 */
public final class StackAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: StackAdmin BOOTSTRAP TIMEOUT_SECONDS BROKER_PID|- name:partitions...");
            System.exit(2);
        }
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        ProcessHandle broker = args[2].equals("-") ? null
                : ProcessHandle.of(Long.parseLong(args[2])).orElse(null);
        if (!args[2].equals("-") && broker == null) {
            System.err.println("broker process " + args[2] + " is not running");
            System.exit(3);
        }
        Map<String, Integer> wanted = new LinkedHashMap<>();
        for (int i = 3; i < args.length; i++) {
            String[] p = args[i].split(":", 2);
            wanted.put(p[0], p.length > 1 ? Integer.parseInt(p[1]) : 3);
        }

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "stack-sh");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        props.put(AdminClientConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "500");

        Exception last = null;
        try (Admin admin = Admin.create(props)) {
            while (System.nanoTime() < deadline) {
                if (broker != null && !broker.isAlive()) {
                    System.err.println("broker process " + args[2] + " exited");
                    System.exit(3);
                }
                try {
                    ensure(admin, wanted);
                    if (broker != null) warmCoordinators(admin, bootstrap);
                    return;
                } catch (ExecutionException | RuntimeException e) {
                    last = e;
                    Thread.sleep(300);
                }
            }
        }
        Throwable cause = last instanceof ExecutionException && last.getCause() != null ? last.getCause() : last;
        System.err.println("broker at " + bootstrap + " not ready: " + (cause == null ? "timed out" : cause));
        System.exit(1);
    }

    private static void warmCoordinators(Admin admin, String bootstrap) throws Exception {
        try {
            admin.describeConsumerGroups(List.of("stack-sh-ready")).all().get();
        } catch (ExecutionException e) {
            // The coordinator answered: the group does not exist (Kafka 4 says so instead of DEAD).
            if (!(e.getCause() instanceof GroupIdNotFoundException)) throw e;
        }
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "stack-sh");
        // A new transactional id each start: one the broker already knows gets its old producer id
        // back, and the restarted broker's first block of ids would then be fetched on the
        // service's first InitProducerId instead (its "coordinator is loading" logged as an error).
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG,
                "stack-sh-ready-" + System.currentTimeMillis());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "5000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
        }
    }

    private static void ensure(Admin admin, Map<String, Integer> wanted) throws Exception {
        if (admin.describeCluster().nodes().get().isEmpty()) {
            throw new IllegalStateException("no broker registered yet");
        }
        Set<String> existing = admin.listTopics().names().get();
        List<NewTopic> create = new ArrayList<>();
        for (Map.Entry<String, Integer> t : wanted.entrySet()) {
            if (!existing.contains(t.getKey())) {
                create.add(new NewTopic(t.getKey(), t.getValue(), (short) 1));
            }
        }
        if (!create.isEmpty()) {
            for (var f : admin.createTopics(create).values().entrySet()) {
                try {
                    f.getValue().get();
                    System.out.println("kafka:    created topic " + f.getKey()
                            + " (" + wanted.get(f.getKey()) + " partitions)");
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
        }
        if (wanted.isEmpty()) return;
        Map<String, TopicDescription> d = admin.describeTopics(wanted.keySet()).allTopicNames().get();
        for (Map.Entry<String, Integer> t : wanted.entrySet()) {
            int have = d.get(t.getKey()).partitions().size();
            if (have != t.getValue()) {
                System.err.println("kafka:    warning: topic " + t.getKey() + " has " + have
                        + " partitions, wanted " + t.getValue() + " (left as is)");
            }
        }
    }
}
