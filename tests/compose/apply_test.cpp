// The pure half of the apply module (kiln/apply.h): a compose service's
// `kiln run -d` options, the names, the config hash and the depends_on
// order, from projects loaded by the compose translator (no store, no
// containers; tests/compose/compose_app.sh runs them for real).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "kiln/apply.h"
#include "kiln/compose.h"

namespace kiln::apply {
namespace {

deployment::Project LoadYaml(const std::string& yaml) {
  compose::LoadOptions o;
  o.working_dir = "/proj/app";
  o.files = {"compose.yaml"};
  o.environ = {{"PW", "pw1"}};
  o.read_file = [yaml](const std::string& p) -> std::optional<std::string> {
    if (p == "/proj/app/compose.yaml")
      return yaml;
    return std::nullopt;
  };
  auto r = compose::Load(o);
  EXPECT_TRUE(r) << (r ? "" : r.error().message());
  return r ? r->project : deployment::Project{};
}

const deployment::Service& Svc(const deployment::Project& p, const std::string& name) {
  return *std::find_if(p.services.begin(), p.services.end(), [&](const auto& s) { return s.name == name; });
}

bool Has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

const char kApp[] = R"(
name: shop
services:
  web:
    build: .
    ports: ["8080:80", "127.0.0.1::443/udp"]
    entrypoint: ["/bin/sh", "-c"]
    command: ["exec httpd -f"]
    environment: {A: "1", PW: "${PW}"}
    depends_on: {db: {condition: service_healthy}, cache: {condition: service_started}}
    networks: {front: {aliases: [www]}, default: null}
    labels: {tier: front}
  db:
    image: busybox
    container_name: the-db
    volumes: ["data:/var/lib/db", "./conf:/etc/db:ro", "/scratch"]
    healthcheck: {test: ["CMD", "nc", "-z", "localhost", "5432"], interval: 2s, retries: 4}
    restart: unless-stopped
    stop_signal: SIGINT
    secrets: [{source: pw, target: db_pw, mode: 0400}]
  cache:
    image: busybox
    network_mode: service:db
  job:
    image: busybox
    depends_on: {web: {condition: service_completed_successfully}}
volumes: {data: {}}
networks: {front: {}}
secrets: {pw: {environment: PW}}
)";

TEST(Apply, NamesAsDockerCompose) {
  auto p = LoadYaml(kApp);
  EXPECT_EQ(ImageName(p, Svc(p, "web")), "shop-web");
  EXPECT_EQ(ImageName(p, Svc(p, "db")), "busybox");
  EXPECT_EQ(ContainerName(p, Svc(p, "web")), "shop-web-1");
  EXPECT_EQ(ContainerName(p, Svc(p, "db")), "the-db");
}

TEST(Apply, ServiceRunOptions) {
  auto p = LoadYaml(kApp);
  std::vector<std::string> warnings;
  auto web = ServiceRunOptions(p, Svc(p, "web"), &warnings);
  ASSERT_TRUE(web) << web.error().message();
  EXPECT_TRUE(web->detach);
  EXPECT_EQ(web->name, "shop-web-1");
  EXPECT_EQ(web->image, "shop-web");
  EXPECT_EQ(web->entrypoint, std::optional<std::string>("/bin/sh"));
  EXPECT_EQ(web->command, (std::vector<std::string>{"-c", "exec httpd -f"}));
  EXPECT_TRUE(Has(web->env, "A=1"));
  EXPECT_TRUE(Has(web->env, "PW=pw1"));
  ASSERT_EQ(web->ports.size(), 2u);
  EXPECT_EQ(web->ports[0].host_port, 8080);
  EXPECT_EQ(web->ports[0].container_port, 80);
  EXPECT_EQ(web->ports[1].host_ip, "127.0.0.1");
  EXPECT_EQ(web->ports[1].host_port, 0);
  EXPECT_TRUE(web->ports[1].udp);
  EXPECT_TRUE(Has(web->networks, "shop_front:alias=web,alias=www"));
  EXPECT_TRUE(Has(web->networks, "shop_default:alias=web"));
  EXPECT_TRUE(Has(web->labels, "tier=front"));
  EXPECT_TRUE(Has(web->labels, "com.docker.compose.project=shop"));
  EXPECT_TRUE(Has(web->labels, "com.docker.compose.service=web"));
  EXPECT_TRUE(Has(web->labels, "com.docker.compose.container-number=1"));
  EXPECT_TRUE(Has(web->labels, "com.docker.compose.oneoff=False"));
  EXPECT_TRUE(Has(web->labels, "com.docker.compose.project.working_dir=/proj/app"));

  auto db = ServiceRunOptions(p, Svc(p, "db"), &warnings);
  ASSERT_TRUE(db) << db.error().message();
  ASSERT_EQ(db->mounts.size(), 3u);
  EXPECT_EQ(db->mounts[0].type, run::MountRequest::Type::kVolume);
  EXPECT_EQ(db->mounts[0].source, "shop_data");  // the project's volume by its real name
  EXPECT_EQ(db->mounts[1].type, run::MountRequest::Type::kBind);
  EXPECT_EQ(db->mounts[1].source, "/proj/app/conf");
  EXPECT_TRUE(db->mounts[1].read_only);
  EXPECT_EQ(db->mounts[2].source, "");  // anonymous
  EXPECT_EQ(db->health_cmd, std::optional<std::string>("nc -z localhost 5432"));
  EXPECT_EQ(db->health_interval, std::optional<std::string>("2s"));
  EXPECT_EQ(db->health_retries, std::optional<int>(4));
  EXPECT_EQ(db->restart, "unless-stopped");
  EXPECT_EQ(db->stop_signal, "SIGINT");
  EXPECT_EQ(web->stop_signal, "");
  EXPECT_EQ(db->secrets, (std::vector<std::string>{"shop_pw,type=mount,target=/run/secrets/db_pw,mode=400"}));

  auto cache = ServiceRunOptions(p, Svc(p, "cache"), &warnings);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->network_container, "the-db");
  EXPECT_TRUE(cache->networks.empty());
}

TEST(Apply, UnsupportedKeysNamed) {
  auto p = LoadYaml("services:\n  a:\n    image: busybox\n    cap_add: [NET_ADMIN]\n    privileged: true\n"
                    "  b:\n    image: busybox\n    network_mode: bridge2\n");
  std::vector<std::string> warnings;
  ASSERT_TRUE(ServiceRunOptions(p, Svc(p, "a"), &warnings));
  EXPECT_TRUE(Has(warnings, "service a: cap_add/cap_drop: not supported by kiln yet, left out"));
  EXPECT_TRUE(Has(warnings, "service a: privileged: not supported by kiln, left out"));
  auto b = ServiceRunOptions(p, Svc(p, "b"), &warnings);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), Errc::kInvalidInput);
  EXPECT_NE(b.error().message().find("service b: network_mode: bridge2"), std::string::npos);
}

TEST(Apply, StartOrderAndSelection) {
  auto p = LoadYaml(kApp);
  std::vector<std::string> all = {"cache", "db", "job", "web"};
  auto levels = StartLevels(p, all);
  // cache shares db's network namespace (network_mode: service:db): after it.
  ASSERT_EQ(levels.size(), 4u);
  EXPECT_EQ(levels[0], (std::vector<std::string>{"db"}));
  EXPECT_EQ(levels[1], (std::vector<std::string>{"cache"}));
  EXPECT_EQ(levels[2], (std::vector<std::string>{"web"}));
  EXPECT_EQ(levels[3], (std::vector<std::string>{"job"}));
  auto sel = SelectServices(p, {"web"});
  ASSERT_TRUE(sel);
  EXPECT_EQ(*sel, (std::vector<std::string>{"db", "cache", "web"}));
  auto cache = SelectServices(p, {"cache"});
  ASSERT_TRUE(cache);
  EXPECT_EQ(*cache, (std::vector<std::string>{"db", "cache"}));
  auto nodeps = SelectServices(p, {"web"}, true);
  ASSERT_TRUE(nodeps);
  EXPECT_EQ(*nodeps, (std::vector<std::string>{"web"}));
  auto bad = SelectServices(p, {"nosuch"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "no such service: nosuch");
}

TEST(Apply, ConfigHashFollowsTheOptions) {
  auto p = LoadYaml(kApp);
  auto a = ServiceRunOptions(p, Svc(p, "web"), nullptr);
  ASSERT_TRUE(a);
  auto b = *a;
  EXPECT_EQ(ConfigHash(*a), ConfigHash(b));
  b.env.push_back("B=2");
  EXPECT_NE(ConfigHash(*a), ConfigHash(b));
  b = *a;
  b.ports.pop_back();
  EXPECT_NE(ConfigHash(*a), ConfigHash(b));
  b = *a;  // compose's own labels (depends_on, config files) do not count, as docker's hash
  b.labels.push_back("com.docker.compose.depends_on=db:service_started:false");
  EXPECT_EQ(ConfigHash(*a), ConfigHash(b));
}

}  // namespace
}  // namespace kiln::apply
