// Clean against an entry another process holds.

#include "cache/cache.hpp"
#include "robust_cli.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"
#include "util/fd.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace {

namespace cache = ktc::cache;
using ktc::robust::store_with_core;
using Kind = ktc::robust::KeyState::Kind;

const std::string k_held_key = "6.14.2-tarball-x86_64-kcheld";
const std::string k_free_key = "6.14.3-tarball-x86_64-kcheld";

struct Pipe {
  ktc::Fd read_end;
  ktc::Fd write_end;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_end = ktc::Fd(fds[0]);
    write_end = ktc::Fd(fds[1]);
  }
};

std::vector<cache::CleanItem> clean_all(const std::string& root) {
  cache::CacheOptions options;
  options.root = root;
  auto opened = cache::Cache::open(std::move(options));
  REQUIRE(opened);
  auto items = opened->clean(cache::CleanRequest{});
  REQUIRE_MESSAGE(items, items.error().message);
  return std::move(*items);
}

const cache::CleanItem* find_item(const std::vector<cache::CleanItem>& items,
                                  const std::string& key) {
  auto found = std::find_if(items.begin(), items.end(),
                            [&](const auto& item) { return item.key == key; });
  return found == items.end() ? nullptr : &*found;
}

std::string holder_mark(pid_t pid) {
  return "pid=" + std::to_string(pid) + " (";
}

} // namespace

TEST_SUITE_BEGIN("Clean");

TEST_CASE("clean skips an entry another process holds, names the holder, "
          "and removes it once released") {
  ktc::robust::TwoVersions versions;
  const std::string& root = versions.cache.root;
  REQUIRE(store_with_core(root, k_held_key, versions.v1) == "");
  REQUIRE(store_with_core(root, k_free_key, versions.v2) == "");

  SUBCASE("held by a leased lookup in another process") {
    Pipe ready;
    Pipe release;
    pid_t holder = ktc::robust::fork_child([&] {
      ready.read_end.reset();
      release.write_end.reset();
      cache::CacheOptions options;
      options.root = root;
      auto opened = cache::Cache::open(std::move(options));
      auto entry = opened ? opened->lookup(k_held_key, true)
                          : ktc::Result<cache::Entry>(opened.error());
      if (!entry) {
        return 1;
      }
      char byte = 'r';
      if (::write(ready.write_end.get(), &byte, 1) != 1) {
        return 2;
      }
      // Holds the lease until the parent closes its end.
      while (::read(release.read_end.get(), &byte, 1) > 0) {
      }
      return 0;
    });
    ready.write_end.reset();
    release.read_end.reset();
    char byte = 0;
    REQUIRE(::read(ready.read_end.get(), &byte, 1) == 1);

    auto items = clean_all(root);
    const auto* held = find_item(items, k_held_key);
    REQUIRE(held != nullptr);
    CHECK(held->action == cache::CleanAction::skipped_in_use);
    CHECK_MESSAGE(held->message.find(holder_mark(holder)) != std::string::npos,
                  held->message);
    const auto* freed = find_item(items, k_free_key);
    REQUIRE(freed != nullptr);
    CHECK(freed->action == cache::CleanAction::removed);
    ktc::robust::check_whole(root, k_held_key, versions.v1_sha);

    release.write_end.reset();
    CHECK(ktc::robust::describe_status(ktc::robust::wait_status(holder)) ==
          "exit 0");
  }

  SUBCASE("held by flock(1), through the CLI") {
    std::string lock_path = root + "/.locks/" + k_held_key + ".lock";
    Pipe input;
    ktc::robust::SpawnOptions options;
    options.stdin_fd = input.read_end.get();
    pid_t holder =
        ktc::robust::spawn({"flock", "-s", lock_path, "cat"}, options);
    input.read_end.reset();
    REQUIRE(ktc::robust::wait_until(
        [&] { return ktc::robust::flock_held(lock_path); },
        std::chrono::seconds(10)));

    auto result = versions.cache.run({"clean", "--all"});
    CHECK_MESSAGE(result.exit_code == 5, result.err);
    std::string output = result.out + result.err;
    CHECK_MESSAGE(output.find("skipped " + k_held_key) != std::string::npos,
                  output);
    CHECK_MESSAGE(output.find(holder_mark(holder)) != std::string::npos,
                  output);
    CHECK(ktc::robust::inspect(root, k_free_key).kind == Kind::absent);
    ktc::robust::check_whole(root, k_held_key, versions.v1_sha);

    input.write_end.reset();
    CHECK(ktc::robust::describe_status(ktc::robust::wait_status(holder)) ==
          "exit 0");
  }

  auto items = clean_all(root);
  const auto* released = find_item(items, k_held_key);
  REQUIRE(released != nullptr);
  CHECK(released->action == cache::CleanAction::removed);
  CHECK(ktc::robust::inspect(root, k_held_key).kind == Kind::absent);
  CHECK(ktc::robust::leftovers(root).empty());
}

TEST_SUITE_END();
