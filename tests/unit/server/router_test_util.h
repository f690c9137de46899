// A Router over a NamespaceStore in a fresh temporary directory, for tests of the routing layer
// without a socket: `default` and `acme` exist, and --namespace-domain is db.example.com.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "server/router.h"

namespace quire::server::testing {

class RouterFixture : public ::testing::Test {
 protected:
  // `name` keeps this suite's directories apart from other suites' in the temporary directory.
  explicit RouterFixture(std::string name) : name_(std::move(name)) {}

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-" + name_ + "-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    engine::NamespaceStore::Options options;
    options.root = dir_.string();
    auto store = engine::NamespaceStore::open(options);
    ASSERT_TRUE(store);
    store_ = std::move(store.value());
    ASSERT_TRUE(store_->create("acme", {}));
    config_.namespace_domain = "db.example.com";
    streams_ = std::make_unique<hrana::StreamRegistry>(config_.limits);
    router_ = std::make_unique<Router>(config_, *store_, *streams_);
  }

  void TearDown() override {
    router_.reset();
    streams_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  Config config_;
  std::unique_ptr<engine::NamespaceStore> store_;
  std::unique_ptr<hrana::StreamRegistry> streams_;
  std::unique_ptr<Router> router_;

 private:
  std::string name_;
};

}  // namespace quire::server::testing
