// Kubernetes YAML -> model -> Pod YAML without a file system: every field
// read, every error with file:line:column, the warnings for what is left
// out, and the round trip (generate -> parse gives the same pod; generate is
// a fixed point).
#include <gtest/gtest.h>

#include <string>

#include "kiln/fs.h"
#include "kiln/kube.h"
#include "support/golden.h"
#include "support/testdata.h"

namespace kiln::kube {
namespace {

std::string Testdata(const std::string& name) {
  auto t = ReadFile(test::TestdataDir() + "/kube/" + name);
  EXPECT_TRUE(t) << name;
  return t ? *t : "";
}

Document MustParse(const std::string& yaml) {
  auto d = Parse(yaml, "pod.yaml");
  EXPECT_TRUE(d) << (d ? "" : d.error().message());
  return d ? *d : Document{};
}

std::string ErrorOf(const std::string& yaml) {
  auto d = Parse(yaml, "pod.yaml");
  EXPECT_FALSE(d) << yaml;
  if (d)
    return "";
  EXPECT_EQ(d.error().code(), Errc::kInvalidInput);
  return d.error().message();
}

const std::string kPodHead = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n";

TEST(KubeParse, PodWithEveryField) {
  Document d = MustParse(Testdata("pod.yaml"));
  EXPECT_TRUE(d.warnings.empty()) << d.warnings[0];
  ASSERT_EQ(d.pods.size(), 1u);
  const auto& pod = d.pods[0];
  EXPECT_EQ(pod.name, "my-pod");
  EXPECT_EQ(pod.labels.at("app"), "my-pod");
  EXPECT_EQ(pod.hostname, "my-pod");
  EXPECT_EQ(pod.restart_policy, "always");
  ASSERT_EQ(pod.containers.size(), 2u);
  const auto& web = pod.containers[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.image, "docker.io/library/busybox:latest");
  EXPECT_EQ(*web.entrypoint, (std::vector<std::string>{"/bin/sh"}));
  EXPECT_EQ(*web.command, (std::vector<std::string>{"httpd", "-f", "-p", "80"}));
  ASSERT_EQ(web.environment.size(), 3u);
  EXPECT_EQ(web.environment[0].value, "hello");
  ASSERT_TRUE(web.environment[1].from);
  EXPECT_EQ(web.environment[1].from->kind, "configMapKeyRef");
  EXPECT_EQ(web.environment[1].from->name, "app-config");
  EXPECT_EQ(web.environment[1].from->key, "host");
  EXPECT_EQ(web.environment[2].from->kind, "secretKeyRef");
  EXPECT_EQ(web.environment[2].from->optional, false);
  ASSERT_EQ(web.ports.size(), 2u);
  EXPECT_EQ(web.ports[0].target, 80u);
  EXPECT_EQ(web.ports[0].published, "8080");
  EXPECT_EQ(web.ports[1].protocol, "udp");
  EXPECT_EQ(web.user, "1000:1000");
  EXPECT_EQ(web.working_dir, "/www");
  ASSERT_EQ(web.volumes.size(), 2u);
  EXPECT_EQ(web.volumes[0].type, "bind");
  EXPECT_EQ(web.volumes[0].source, "/srv/www");
  EXPECT_EQ(web.volumes[0].target, "/www");
  EXPECT_TRUE(web.volumes[0].read_only);
  EXPECT_EQ(web.volumes[1].type, "volume");
  EXPECT_EQ(web.volumes[1].source, "data");
  ASSERT_TRUE(web.healthcheck);
  EXPECT_EQ(web.healthcheck->test, (std::vector<std::string>{"CMD", "/bin/sh", "-c", "wget -q -O- http://localhost/"}));
  EXPECT_EQ(*web.healthcheck->interval_ns, 10'000'000'000);
  EXPECT_EQ(*web.healthcheck->start_period_ns, 5'000'000'000);
  EXPECT_EQ(*web.healthcheck->retries, 3);
  const auto& db = pod.containers[1];
  EXPECT_EQ(*db.healthcheck->tcp_port, "5432");
  EXPECT_EQ(db.mem_limit, "256Mi");
  EXPECT_EQ(db.volumes[0].type, "emptydir");
  EXPECT_EQ(db.volumes[1].type, "configmap");
  EXPECT_EQ(db.volumes[1].source, "app-config");
}

TEST(KubeParse, DeploymentIsOnePodWithAWarningOtherKindsRecordedOrWarned) {
  Document d = MustParse(Testdata("deployment.yaml"));
  ASSERT_EQ(d.pods.size(), 1u);
  EXPECT_EQ(d.pods[0].name, "web-pod");
  EXPECT_EQ(d.pods[0].labels.at("app"), "web");
  EXPECT_EQ(d.pods[0].labels.at("tier"), "front");
  const auto& c = d.pods[0].containers[0];
  EXPECT_EQ(c.user, "1001");
  ASSERT_TRUE(c.healthcheck && c.healthcheck->http_get);
  EXPECT_EQ(c.healthcheck->http_get->path, "/healthz");
  EXPECT_EQ(c.healthcheck->http_get->port, "http");
  EXPECT_EQ(c.healthcheck->http_get->headers[0].second, "kiln");
  ASSERT_EQ(d.config_maps.size(), 1u);
  EXPECT_EQ(d.config_maps[0].data.at("mode"), "production");
  ASSERT_EQ(d.claims.size(), 1u);
  EXPECT_EQ(d.claims[0].storage, "1Gi");
  ASSERT_EQ(d.warnings.size(), 3u);
  EXPECT_EQ(d.warnings[0], "pod.yaml:26:13: Deployment/web.spec.replicas: 3 replicas asked, kiln runs one pod (as podman)");
  EXPECT_EQ(d.warnings[1], "pod.yaml:44:9: Deployment/web.spec.template.spec.containers[0].readinessProbe: not "
                           "supported by kiln yet, left out");
  EXPECT_EQ(d.warnings[2], "pod.yaml:55:7: Service: kind Service is not supported by kiln (Pod, Deployment, ConfigMap, "
                           "Secret, PersistentVolumeClaim), left out");
}

TEST(KubeParse, UnknownFieldsWarnByPath) {
  Document d = MustParse(kPodHead +
                         "  containers:\n  - name: a\n    image: busybox\n    imagePullSecrets: x\n  dnsPolicy: None\n");
  ASSERT_EQ(d.warnings.size(), 2u);
  EXPECT_EQ(d.warnings[0], "pod.yaml:9:5: Pod/p.spec.containers[0].imagePullSecrets: unknown field, left out");
  EXPECT_EQ(d.warnings[1], "pod.yaml:10:3: Pod/p.spec.dnsPolicy: unknown field, left out");
}

TEST(KubeParse, Errors) {
  EXPECT_EQ(ErrorOf("apiVersion: v1\nmetadata: {name: x}\n"), "pod.yaml:1:1: document 1: kind is required");
  EXPECT_EQ(ErrorOf("kind: Pod\nmetadata: {}\nspec: {}\n"), "pod.yaml:2:11: Pod.metadata: metadata.name is required");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers:\n  - name: a\n"), "pod.yaml:7:5: Pod/p.spec.containers[0]: image is required");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers:\n  - {name: a, image: b, ports: [{containerPort: 0}]}\n"),
            "pod.yaml:7:49: Pod/p.spec.containers[0].ports[0].containerPort: 0 is out of range (1-65535)");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers:\n  - {name: a, image: b, volumeMounts: [{name: v, mountPath: /x}]}\n"),
            "pod.yaml:7:47: Pod/p.spec.containers[0].volumeMounts[0].name: no volume named \"v\" in spec.volumes");
  EXPECT_EQ(ErrorOf(kPodHead + "  restartPolicy: Sometimes\n  containers: [{name: a, image: b}]\n"),
            "pod.yaml:6:18: Pod/p.spec.restartPolicy: unknown restart policy \"Sometimes\" (Always, OnFailure, Never)");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers: [{name: a, image: b}, {name: a, image: c}]\n"),
            "pod.yaml:6:37: Pod/p.spec.containers[1]: container name \"a\" used twice");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers:\n  - name: a\n    image: b\n    livenessProbe: {periodSeconds: 3}\n"),
            "pod.yaml:9:20: Pod/p.spec.containers[0].livenessProbe: needs exactly one of exec, httpGet, tcpSocket");
  EXPECT_EQ(ErrorOf(kPodHead + "  containers:\n  - name: a\n    image: b\n    env: [{name: X, value: y, valueFrom: "
                               "{fieldRef: {fieldPath: metadata.name}}}]\n"),
            "pod.yaml:9:11: Pod/p.spec.containers[0].env[0]: value and valueFrom are mutually exclusive");
  EXPECT_EQ(ErrorOf("kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [\n"),
            "pod.yaml:5:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorOf(""), "pod.yaml: no Kubernetes object in the file");
}

TEST(KubeGenerate, GoldenPodYaml) {
  Document d = MustParse(Testdata("pod.yaml"));
  ASSERT_EQ(d.pods.size(), 1u);
  std::vector<std::string> warnings;
  std::string out = GeneratePodYaml(d.pods[0], &warnings);
  EXPECT_TRUE(warnings.empty());
  test::ExpectGolden(test::TestdataDir() + "/kube/pod.generated.yaml", out);
}

// YAML -> model -> YAML -> model: the same pod; generate is a fixed point.
TEST(KubeGenerate, RoundTrip) {
  for (const char* name : {"pod.yaml", "deployment.yaml"}) {
    Document first = MustParse(Testdata(name));
    ASSERT_FALSE(first.pods.empty()) << name;
    for (const auto& pod : first.pods) {
      std::string yaml = GeneratePodYaml(pod);
      Document second = MustParse(yaml);
      ASSERT_EQ(second.pods.size(), 1u) << yaml;
      deployment::Pod want = pod;
      want.name = SanitizeName(pod.name);
      EXPECT_EQ(second.pods[0], want) << name << "\n" << yaml;
      EXPECT_EQ(GeneratePodYaml(second.pods[0]), yaml) << name;
    }
  }
}

// A pod the run side builds from containers (no kube names): podman's volume
// names, a shell health check as exec, a named user warned about.
TEST(KubeGenerate, FromContainersAsKubeGenerateWill) {
  deployment::Pod pod;
  pod.name = "My_Pod";
  pod.restart_policy = "on-failure";
  deployment::Service c;
  c.name = "web";
  c.image = "busybox";
  c.command = std::vector<std::string>{"httpd", "-f"};
  c.environment = {{"A", "1", std::nullopt}};
  c.ports = {{"", "", 80, "8080", "tcp", "", ""}, {"", "", 53, "", "udp", "", ""}};
  deployment::VolumeMount bind;
  bind.type = "bind";
  bind.source = "/home/u/www";
  bind.target = "/www";
  deployment::VolumeMount named;
  named.type = "volume";
  named.source = "data";
  named.target = "/data";
  c.volumes = {bind, named};
  c.user = "nobody";
  deployment::HealthCheck h;
  h.test = {"CMD-SHELL", "wget -q -O- localhost"};
  h.interval_ns = 30'000'000'000;
  c.healthcheck = h;
  pod.containers = {c};
  std::vector<std::string> warnings;
  std::string yaml = GeneratePodYaml(pod, &warnings);
  EXPECT_EQ(yaml,
            "apiVersion: v1\n"
            "kind: Pod\n"
            "metadata:\n"
            "  name: my-pod\n"
            "spec:\n"
            "  containers:\n"
            "  - args:\n"
            "    - httpd\n"
            "    - -f\n"
            "    env:\n"
            "    - name: A\n"
            "      value: \"1\"\n"
            "    image: busybox\n"
            "    livenessProbe:\n"
            "      exec:\n"
            "        command:\n"
            "        - /bin/sh\n"
            "        - -c\n"
            "        - wget -q -O- localhost\n"
            "      periodSeconds: 30\n"
            "    name: web\n"
            "    ports:\n"
            "    - containerPort: 80\n"
            "      hostPort: 8080\n"
            "    - containerPort: 53\n"
            "      protocol: UDP\n"
            "    volumeMounts:\n"
            "    - mountPath: /www\n"
            "      name: home-u-www-host\n"
            "    - mountPath: /data\n"
            "      name: data-pvc\n"
            "  restartPolicy: OnFailure\n"
            "  volumes:\n"
            "  - hostPath:\n"
            "      path: /home/u/www\n"
            "    name: home-u-www-host\n"
            "  - name: data-pvc\n"
            "    persistentVolumeClaim:\n"
            "      claimName: data\n");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0], "pod name \"My_Pod\" is not a Kubernetes name: written as \"my-pod\"");
  EXPECT_EQ(warnings[1], "container web: user \"nobody\" is not numeric: runAsUser needs a uid, left out");
}

TEST(KubeResolve, SecretValuesDecodeDataAndTakeStringData) {
  Document d = MustParse("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  user: YWRtaW4=\n"
                         "  pw: czNjcjN0\n  odd: YQ\nstringData:\n  pw: plain\n");
  ASSERT_EQ(d.secrets.size(), 1u);
  auto v = SecretValues(d.secrets[0]);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->at("user"), "admin");
  EXPECT_EQ(v->at("pw"), "plain");  // stringData wins
  EXPECT_EQ(v->at("odd"), "a");     // padding optional
  Secret bad{"b", "", {{"k", "no*base64"}}, {}};
  auto e = SecretValues(bad);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message(), "Secret b: data.k: not base64");
}

TEST(KubeResolve, EnvFromConfigMapsAndSecretsProbeAndRestart) {
  Document d = MustParse(kPodHead +
                         "  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      value: a\n"
                         "    - name: B\n      valueFrom:\n        configMapKeyRef: {name: cm, key: b}\n"
                         "    - name: C\n      valueFrom:\n        secretKeyRef: {name: sec, key: c}\n"
                         "    - name: D\n      valueFrom:\n        configMapKeyRef: {name: cm, key: nokey, optional: true}\n"
                         "    livenessProbe:\n      exec:\n        command: [/bin/sh, -c, test -d /data]\n");
  Sources src;
  src.config_maps["cm"] = {{"b", "from-map"}};
  src.secrets["sec"] = {{"c", "from-secret"}};
  auto p = ResolvePod(d.pods[0], src);
  ASSERT_TRUE(p) << p.error().message();
  const auto& env = p->containers[0].environment;
  ASSERT_EQ(env.size(), 3u);  // D is optional and missing: left out
  EXPECT_EQ(env[0].value, "a");
  EXPECT_EQ(env[1].name, "B");
  EXPECT_EQ(env[1].value, "from-map");
  EXPECT_FALSE(env[1].from);
  EXPECT_EQ(env[2].value, "from-secret");
  EXPECT_EQ(p->containers[0].healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "test -d /data"}));
  EXPECT_EQ(p->restart_policy, "always");

  src.secrets.clear();
  auto e = ResolvePod(d.pods[0], src);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message(),
            "pod p: container c: env C: secretKeyRef: no Secret sec (in the file or kiln's secret store)");
  src.secrets["sec"] = {};
  e = ResolvePod(d.pods[0], src);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message(), "pod p: container c: env C: secretKeyRef: no key c in Secret sec");
}

TEST(KubeNames, SanitizeAsRfc1123) {
  EXPECT_EQ(SanitizeName("My_Pod"), "my-pod");
  EXPECT_EQ(SanitizeName("__x__"), "x");
  EXPECT_EQ(SanitizeName(std::string(80, 'a')).size(), 63u);
}

}  // namespace
}  // namespace kiln::kube
