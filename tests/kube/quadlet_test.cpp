// Quadlet files to systemd units (src/systemd/quadlet.cpp): pure, over strings.
#include <gtest/gtest.h>

#include "kiln/systemd.h"

namespace kiln::systemd {
namespace {

const QuadletOptions kOpts{"/usr/bin/kiln", "/home/u/.local/share/kiln"};

bool Has(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(Quadlet, ContainerBecomesKilnRun) {
  auto u = Quadlet("web.container", "/q/web.container",
                   "[Unit]\nDescription=web server\n\n[Container]\nImage=localhost/web\n"
                   "PublishPort=127.0.0.1:8080:80\nEnvironment=A=1 \"B=two words\"\nVolume=data.volume:/data\n"
                   "Network=net.network\nHealthCmd=wget -q -O- http://127.0.0.1/\nExec=httpd -f \\\n  -p 80\n\n"
                   "[Service]\nRestart=always\n\n[Install]\nWantedBy=default.target\n",
                   kOpts);
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->file_name, "web.service");
  const std::string& t = u->text;
  EXPECT_TRUE(Has(t, "Description=web server")) << t;
  EXPECT_TRUE(Has(t, "SourcePath=/q/web.container")) << t;
  EXPECT_TRUE(Has(t, "Requires=data-volume.service")) << t;
  EXPECT_TRUE(Has(t, "After=net-network.service")) << t;
  EXPECT_TRUE(Has(t, "Type=forking")) << t;
  EXPECT_TRUE(Has(t, "Restart=always")) << t;
  EXPECT_TRUE(Has(t, "WantedBy=default.target")) << t;
  EXPECT_TRUE(Has(t, "ExecStart=/usr/bin/kiln --root /home/u/.local/share/kiln run -d --name systemd-web "
                     "-p 127.0.0.1:8080:80 -e A=1 -e \"B=two words\" -v systemd-data:/data --network=systemd-net "
                     "--health-cmd \"wget -q -O- http://127.0.0.1/\" localhost/web httpd -f -p 80"))
      << t;
  EXPECT_TRUE(Has(t, "ExecStop=/usr/bin/kiln --root /home/u/.local/share/kiln rm -f systemd-web")) << t;
  EXPECT_EQ(t.find("[Container]"), std::string::npos) << t;
}

TEST(Quadlet, ContainerNameAndPercentKept) {
  auto u = Quadlet("a.container", "/q/a.container",
                   "[Container]\nImage=busybox\nContainerName=app\nExec=sh -c 'echo 100%'\n", kOpts);
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_NE(u->text.find("run -d --name app busybox sh -c \"echo 100%%\""), std::string::npos) << u->text;
}

TEST(Quadlet, VolumeAndNetworkAreOneshot) {
  auto v = Quadlet("data.volume", "/q/data.volume", "[Volume]\n", kOpts);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->file_name, "data-volume.service");
  EXPECT_TRUE(Has(v->text, "Type=oneshot")) << v->text;
  EXPECT_TRUE(Has(v->text, "ExecStart=/usr/bin/kiln --root /home/u/.local/share/kiln volume create --ignore systemd-data"))
      << v->text;
  auto n = Quadlet("net.network", "/q/net.network", "[Network]\nNetworkName=backend\nSubnet=10.99.0.0/24\nInternal=true\n",
                   QuadletOptions{"/usr/bin/kiln", ""});
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->file_name, "net-network.service");
  EXPECT_TRUE(Has(n->text, "ExecStart=/usr/bin/kiln network create --ignore --subnet 10.99.0.0/24 --internal backend"))
      << n->text;
}

TEST(Quadlet, NamedObjectsAreUsed) {
  QuadletOptions o{"/usr/bin/kiln", "", {}};
  auto n = Quadlet("net.network", "/q/net.network", "[Network]\nNetworkName=backend\n", o);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->object, "backend");
  o.objects["net.network"] = n->object;
  auto c = Quadlet("c.container", "/q/c.container", "[Container]\nImage=busybox\nNetwork=net.network\n", o);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_NE(c->text.find("--network=backend busybox"), std::string::npos) << c->text;
}

TEST(Quadlet, KubePlaysAndDowns) {
  auto k = Quadlet("app.kube", "/q/app.kube", "[Kube]\nYaml=app.yml\n", kOpts);
  ASSERT_TRUE(k) << k.error().message();
  EXPECT_TRUE(Has(k->text, "ExecStart=/usr/bin/kiln --root /home/u/.local/share/kiln kube play --replace /q/app.yml"))
      << k->text;
  EXPECT_TRUE(Has(k->text, "ExecStop=/usr/bin/kiln --root /home/u/.local/share/kiln kube down /q/app.yml")) << k->text;
}

TEST(Quadlet, ErrorsNameFileLineAndKey) {
  auto u = Quadlet("x.container", "/q/x.container", "[Container]\nImage=busybox\n\nFrobnicate=yes\n", kOpts);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message().find("/q/x.container:4: unsupported key 'Frobnicate' in group 'Container'"),
            std::string::npos)
      << u.error().message();
  auto noimg = Quadlet("y.container", "/q/y.container", "[Container]\nExec=true\n", kOpts);
  ASSERT_FALSE(noimg);
  EXPECT_NE(noimg.error().message().find("no Image="), std::string::npos);
  auto bad = Quadlet("z.container", "/q/z.container", "Image=busybox\n", kOpts);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("/q/z.container:1:"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(IsQuadletFile("readme.txt"));
  EXPECT_FALSE(IsQuadletFile(".container"));
  EXPECT_TRUE(IsQuadletFile("a.kube"));
}

}  // namespace
}  // namespace kiln::systemd
