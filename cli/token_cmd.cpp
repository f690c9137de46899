#include "cli/token_cmd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "auth/jwt.h"
#include "auth/signing_key.h"
#include "cli/units.h"

namespace quire::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrivateKeyFile = "jwt_private.pem";
constexpr const char* kPublicKeyFile = "jwt_public.pem";

// Writes `text` to `path` with permission bits `mode`. Without `overwrite` an existing file is
// an error (O_EXCL, so no race can turn it into an overwrite); with it, the file is truncated
// and its mode reset, so an old world-readable file cannot keep a new private key readable.
Expected<void, std::string> write_file(const fs::path& path, const std::string& text, mode_t mode,
                                       bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return unexpected(path.string() + " already exists (--force overwrites it)");
    }
    return unexpected("cannot create " + path.string() + ": " + std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (overwrite && ::fchmod(fd, mode) != 0) {
    return unexpected("cannot set the mode of " + path.string() + ": " + std::strerror(errno));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return unexpected("cannot write " + path.string() + ": " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    return unexpected("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  return {};
}

struct KeygenOptions {
  std::string out_dir = ".";
  bool force = false;
  bool json = false;
};

int run_keygen(const KeygenOptions& o) {
  const fs::path dir(o.out_dir);
  const fs::path private_path = dir / kPrivateKeyFile;
  const fs::path public_path = dir / kPublicKeyFile;
  std::error_code ec;
  if (!o.force) {
    // Check both first, so a refusal leaves no half-written pair behind.
    for (const auto& p : {private_path, public_path}) {
      if (fs::exists(fs::symlink_status(p, ec))) {
        std::cerr << "quire: " << p.string() << " already exists (--force overwrites it)\n";
        return kExitFailure;
      }
    }
  }
  fs::create_directories(dir, ec);
  if (ec) {
    std::cerr << "quire: cannot create directory " << dir.string() << ": " << ec.message() << "\n";
    return kExitFailure;
  }
  auto pair = auth::generate_key_pair();
  if (!pair) {
    std::cerr << "quire: " << pair.error() << "\n";
    return kExitFailure;
  }
  if (auto w = write_file(private_path, pair->private_key_pem, 0600, o.force); !w) {
    std::cerr << "quire: " << w.error() << "\n";
    return kExitFailure;
  }
  if (auto w = write_file(public_path, pair->public_key_pem, 0644, o.force); !w) {
    std::cerr << "quire: " << w.error() << "\n";
    fs::remove(private_path, ec);  // a private key without its public half is of no use
    return kExitFailure;
  }

  if (o.json) {
    boost::json::object out;
    out["private_key_file"] = private_path.string();
    out["public_key_file"] = public_path.string();
    out["public_key_base64url"] = pair->public_key_base64url;
    std::cout << boost::json::serialize(out) << "\n";
    return kExitOk;
  }
  std::cout << "Wrote " << private_path.string()
            << " (private key, mode 0600: keep it secret; it signs tokens)\n"
            << "Wrote " << public_path.string() << " (public key: the server verifies with it)\n"
            << "\n"
            << "Public key, raw base64url (the form SQLD_AUTH_JWT_KEY takes):\n"
            << "  " << pair->public_key_base64url << "\n"
            << "\n"
            << "Start the server with it:\n"
            << "  quire serve --auth-jwt-key-file " << public_path.string() << "\n"
            << "Create a token for a client (Authorization: Bearer TOKEN, or authToken):\n"
            << "  quire token create --private-key " << private_path.string() << "\n";
  return kExitOk;
}

struct CreateOptions {
  std::string private_key;
  std::vector<std::string> namespaces;
  std::string access = "rw";
  std::string expires = "7d";
};

int run_create(const CreateOptions& o) {
  std::optional<std::chrono::seconds> lifetime;
  if (o.expires != "never") {
    auto d = parse_duration(o.expires);
    if (!d) {
      std::cerr << "quire: --expires: " << d.error() << " (or never)\n";
      return kExitUsage;
    }
    lifetime = *d;
  }
  const auto access = auth::parse_access(o.access);
  if (!access) {
    std::cerr << "quire: --access must be rw, ro or roa\n";
    return kExitUsage;
  }
  auto claims =
      build_token_claims(o.namespaces, *access, lifetime, std::chrono::system_clock::now());
  if (!claims) {
    std::cerr << "quire: " << claims.error() << "\n";
    return kExitUsage;
  }
  auto key = auth::SigningKey::load_file(o.private_key);
  if (!key) {
    std::cerr << "quire: " << key.error() << "\n";
    return kExitFailure;
  }
  auto token = auth::create_jwt(*key, *claims);
  if (!token) {
    std::cerr << "quire: " << token.error() << "\n";
    return kExitFailure;
  }
  std::cout << *token << "\n";
  return kExitOk;
}

}  // namespace

Expected<auth::Claims, std::string> build_token_claims(const std::vector<std::string>& namespaces,
                                                       auth::Access access,
                                                       std::optional<std::chrono::seconds> lifetime,
                                                       std::chrono::system_clock::time_point now) {
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (const auto& ns : namespaces) {
    if (ns.empty()) return unexpected(std::string("--namespace must not be empty"));
    if (seen.insert(ns).second) unique.push_back(ns);
  }
  auth::Claims claims;
  claims.a = access;
  if (unique.size() == 1) {
    claims.id = std::move(unique);
  } else if (unique.size() > 1) {
    auth::Scopes scopes;
    scopes.ns = std::move(unique);
    auth::PermissionMap p;
    switch (access) {
      case auth::Access::kReadOnly:
        p.ro = std::move(scopes);
        break;
      case auth::Access::kReadWrite:
        p.rw = std::move(scopes);
        break;
      case auth::Access::kReadOnlyAttach:
        p.roa = std::move(scopes);
        break;
    }
    claims.p = std::move(p);
  }
  if (lifetime) {
    const auto now_s =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    claims.exp = now_s + lifetime->count();
  }
  return claims;
}

Command add_token_command(CLI::App& parent) {
  auto* token = parent.add_subcommand(
      "token", "Create Ed25519 key pairs and access tokens (JWTs) for --auth-jwt-key-file");
  token->require_subcommand(1);
  token->footer(
      "Typical use:\n"
      "  quire token keygen --out-dir keys\n"
      "  quire serve --auth-jwt-key-file keys/jwt_public.pem\n"
      "  TOKEN=$(quire token create --private-key keys/jwt_private.pem --namespace app --expires "
      "30d)\n"
      "Tokens are sqld-compatible: clients send them as `Authorization: Bearer TOKEN` (authToken "
      "in\n"
      "@libsql/client). `quire token keygen --help` and `quire token create --help` give details.");

  auto keygen_options = std::make_shared<KeygenOptions>();
  auto* keygen = token->add_subcommand(
      "keygen",
      "Generate an Ed25519 key pair: DIR/jwt_private.pem (mode 0600, signs tokens) and "
      "DIR/jwt_public.pem (for quire serve --auth-jwt-key-file); print the public key in raw "
      "base64url, the form sqld's SQLD_AUTH_JWT_KEY takes");
  keygen
      ->add_option("--out-dir", keygen_options->out_dir,
                   "Directory to write the two files to (created if missing)")
      ->capture_default_str();
  keygen->add_flag("--force", keygen_options->force, "Overwrite existing key files");
  keygen->add_flag("--json", keygen_options->json,
                   "Print {\"private_key_file\", \"public_key_file\", \"public_key_base64url\"}");

  auto create_options = std::make_shared<CreateOptions>();
  auto* create = token->add_subcommand(
      "create", "Sign an access token and print it (only the token and a newline, for $(...))");
  create
      ->add_option("--private-key", create_options->private_key,
                   "PEM private key file from `quire token keygen` (jwt_private.pem)")
      ->required();
  create->add_option("--namespace", create_options->namespaces,
                     "Limit the token to this namespace; repeat for several (none: every "
                     "namespace). One becomes the `id` claim, several a `p` permission map");
  create
      ->add_option("--access", create_options->access,
                   "rw (read and write), ro (read only) or roa (read only, may be ATTACHed)")
      ->check(CLI::IsMember({"rw", "ro", "roa"}))
      ->capture_default_str();
  create
      ->add_option("--expires", create_options->expires,
                   "Lifetime: a whole number and a unit, 30s, 15m, 12h, 7d or 2w; or never "
                   "(no exp claim)")
      ->capture_default_str();
  create->footer(
      "Claims: a = access; id = the namespace when exactly one is given; p = {\"<access>\": "
      "{\"ns\": [...]}}\nwhen several are; exp = now + lifetime (absent with --expires never).");

  return Command{token, [keygen, keygen_options, create_options]() {
                   if (keygen->parsed()) return run_keygen(*keygen_options);
                   return run_create(*create_options);
                 }};
}

}  // namespace quire::cli
