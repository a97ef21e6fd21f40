// kiln __docs man DIR | bash | zsh | fish | commands: man pages and shell
// completion generated from the command table itself (the CLI11 tree that
// main() builds), at build time (src/cli/meson.build) and installed by
// `meson install`. CLI11 has no generator of its own.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "kiln/text.h"

namespace kiln::cli {

namespace {

struct Node {
  const CLI::App* app;
  std::string path;  // "run", "image ls"
};

bool Visible(const CLI::App* a) { return !a->get_name().empty() && !a->get_group().empty(); }

/// Every visible command and group, depth first, in registration order.
std::vector<Node> Walk(const CLI::App* root) {
  std::vector<Node> out;
  std::function<void(const CLI::App*, const std::string&)> rec = [&](const CLI::App* a, const std::string& path) {
    for (const CLI::App* s : const_cast<CLI::App*>(a)->get_subcommands([](CLI::App* s) { return Visible(s); })) {
      std::string p = path.empty() ? s->get_name() : path + " " + s->get_name();
      out.push_back({s, p});
      rec(s, p);
    }
  };
  rec(root, "");
  return out;
}

std::vector<const CLI::App*> Subs(const CLI::App* a) {
  std::vector<const CLI::App*> out;
  for (CLI::App* s : const_cast<CLI::App*>(a)->get_subcommands([](CLI::App* s) { return Visible(s); }))
    out.push_back(s);
  return out;
}

std::vector<const CLI::Option*> Flags(const CLI::App* a) {
  return a->get_options([](const CLI::Option* o) { return o->nonpositional(); });
}

std::vector<std::string> Names(const CLI::App* a) {
  std::vector<std::string> n{a->get_name()};
  for (const auto& x : a->get_aliases())
    n.push_back(x);
  return n;
}

std::string Roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
  }
  // A line that starts with . or ' is a request.
  std::string fixed;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    fixed += (!l.empty() && (l[0] == '.' || l[0] == '\'') ? "\\&" : "") + l + "\n";
  if (!fixed.empty())
    fixed.pop_back();
  return fixed;
}

std::string FlagValue(const CLI::Option* o) {
  if (o->get_expected_min() <= 0)
    return "";
  std::string t = o->get_type_name();
  return " " + (t.empty() ? std::string("VALUE") : t);
}

std::string Dashed(const std::string& path) {
  std::string s = path.empty() ? "kiln" : "kiln-";
  for (char c : path)
    s += c == ' ' ? '-' : c;
  return s;
}

std::string Upper(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string ManPage(const CLI::App* a, const std::string& path) {
  std::ostringstream m;
  std::string name = Dashed(path);
  m << ".TH " << Upper(name) << " 1 \"\" \"kiln " << KILN_VERSION << "\" \"kiln Manual\"\n";
  m << ".SH NAME\n" << Roff(name) << " \\- " << Roff(a->get_description().empty() ? "kiln" : a->get_description())
    << "\n";
  m << ".SH SYNOPSIS\n" << Roff(CommandUsage(a)) << "\n";
  if (!a->get_aliases().empty()) {
    m << ".SH ALIASES\n";
    std::string parent = path.substr(0, path.rfind(' ') == std::string::npos ? 0 : path.rfind(' '));
    for (const auto& al : a->get_aliases())
      m << Roff("kiln " + (parent.empty() ? "" : parent + " ") + al) << "\n.br\n";
  }
  if (!a->get_footer().empty())
    m << ".SH DESCRIPTION\n" << Roff(a->get_footer()) << "\n";
  auto subs = Subs(a);
  if (!subs.empty()) {
    m << ".SH COMMANDS\n";
    for (const CLI::App* s : subs)
      m << ".TP\n.B " << Roff(s->get_name()) << "\n" << Roff(s->get_description()) << " (see "
        << Roff(Dashed(path.empty() ? s->get_name() : path + " " + s->get_name())) << "(1))\n";
  }
  auto flags = Flags(a);
  if (!flags.empty()) {
    m << ".SH OPTIONS\n";
    for (const CLI::Option* o : flags) {
      std::string names;
      for (const auto& s : o->get_snames())
        names += (names.empty() ? "" : ", ") + ("-" + s);
      for (const auto& l : o->get_lnames())
        names += (names.empty() ? "" : ", ") + ("--" + l);
      m << ".TP\n.B " << Roff(names + FlagValue(o)) << "\n" << Roff(o->get_description()) << "\n";
    }
  }
  if (std::string ex = CommandExamples(a); !ex.empty())
    m << ".SH EXAMPLES\n.nf\n" << Roff(ex) << "\n.fi\n";
  m << ".SH SEE ALSO\n";
  if (path.empty())
    m << "kiln\\-build(1), kiln\\-run(1), kiln\\-images(1), kiln\\-ps(1); docs/cli.md\n";
  else
    m << "kiln(1)\n";
  return m.str();
}

/// "kiln", "kiln image", "kiln image ls" keys: the words typed so far.
void ForEachPath(const CLI::App* root, const std::function<void(const std::string&, const CLI::App*)>& fn) {
  std::function<void(const CLI::App*, const std::string&)> rec = [&](const CLI::App* a, const std::string& key) {
    fn(key, a);
    for (const CLI::App* s : Subs(a))
      for (const auto& n : Names(s))
        rec(s, key + " " + n);
  };
  rec(root, "kiln");
}

std::string Words(const CLI::App* a, bool flags) {
  std::string out;
  if (flags) {
    for (const CLI::Option* o : Flags(a)) {
      for (const auto& s : o->get_snames())
        out += (out.empty() ? "-" : " -") + s;
      for (const auto& l : o->get_lnames())
        out += (out.empty() ? "--" : " --") + l;
    }
  } else {
    for (const CLI::App* s : Subs(a))
      for (const auto& n : Names(s))
        out += (out.empty() ? "" : " ") + n;
  }
  return out;
}

std::string Bash(const CLI::App* root) {
  std::ostringstream b;
  b << "# bash completion for kiln (generated by `kiln __docs bash` from the command table)\n"
       "declare -gA _kiln_subs=() _kiln_flags=()\n";
  ForEachPath(root, [&](const std::string& key, const CLI::App* a) {
    if (std::string s = Words(a, false); !s.empty())
      b << "_kiln_subs['" << key << "']='" << s << "'\n";
    b << "_kiln_flags['" << key << "']='" << Words(a, true) << "'\n";
  });
  b << "_kiln() {\n"
       "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" key=kiln i w\n"
       "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
       "    w=\"${COMP_WORDS[i]}\"\n"
       "    case \"$w\" in --root|--log-level) ((i++)); continue ;; -*) continue ;; esac\n"
       "    if [[ \" ${_kiln_subs[$key]} \" == *\" $w \"* ]]; then key=\"$key $w\"; else break; fi\n"
       "  done\n"
       "  if [[ $cur == -* ]]; then\n"
       "    COMPREPLY=($(compgen -W \"${_kiln_flags[$key]}\" -- \"$cur\"))\n"
       "  elif [[ -n ${_kiln_subs[$key]} ]]; then\n"
       "    COMPREPLY=($(compgen -W \"${_kiln_subs[$key]}\" -- \"$cur\"))\n"
       "  else\n"
       "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
       "  fi\n"
       "}\n"
       "complete -F _kiln kiln\n";
  return b.str();
}

std::string Zsh(const CLI::App* root) {
  std::ostringstream z;
  z << "#compdef kiln\n# zsh completion for kiln (generated by `kiln __docs zsh` from the command table)\n"
       "typeset -gA _kiln_subs _kiln_flags\n";
  ForEachPath(root, [&](const std::string& key, const CLI::App* a) {
    if (std::string s = Words(a, false); !s.empty())
      z << "_kiln_subs[" << "'" << key << "']='" << s << "'\n";
    z << "_kiln_flags['" << key << "']='" << Words(a, true) << "'\n";
  });
  z << "_kiln() {\n"
       "  local key=kiln w i\n"
       "  for ((i = 2; i < CURRENT; i++)); do\n"
       "    w=${words[i]}\n"
       "    case $w in --root|--log-level) ((i++)); continue ;; -*) continue ;; esac\n"
       "    if [[ \" ${_kiln_subs[$key]} \" == *\" $w \"* ]]; then key=\"$key $w\"; else break; fi\n"
       "  done\n"
       "  if [[ ${words[CURRENT]} == -* ]]; then\n"
       "    compadd -- ${=_kiln_flags[$key]}\n"
       "  elif [[ -n ${_kiln_subs[$key]} ]]; then\n"
       "    compadd -- ${=_kiln_subs[$key]}\n"
       "  else\n"
       "    _files\n"
       "  fi\n"
       "}\n"
       "_kiln \"$@\"\n";
  return z.str();
}

std::string FishQuote(const std::string& s) { return QuoteWith(s, '\''); }

std::string Fish(const CLI::App* root) {
  std::ostringstream f;
  f << "# fish completion for kiln (generated by `kiln __docs fish` from the command table)\n"
       "complete -c kiln -f\n";
  auto flag_lines = [&](const CLI::App* a, const std::string& cond) {
    for (const CLI::Option* o : Flags(a)) {
      f << "complete -c kiln";
      if (!cond.empty())
        f << " -n " << FishQuote(cond);
      for (const auto& s : o->get_snames())
        f << " -s " << s;
      for (const auto& l : o->get_lnames())
        f << " -l " << l;
      if (o->get_expected_min() > 0)
        f << " -r";
      f << " -d " << FishQuote(o->get_description()) << "\n";
    }
  };
  flag_lines(root, "__fish_use_subcommand");
  for (const CLI::App* s : Subs(root)) {
    for (const auto& n : Names(s))
      f << "complete -c kiln -n '__fish_use_subcommand' -a " << n << " -d " << FishQuote(s->get_description())
        << "\n";
    std::string seen = "__fish_seen_subcommand_from";
    for (const auto& n : Names(s))
      seen += " " + n;
    auto subs = Subs(s);
    if (subs.empty()) {
      flag_lines(s, seen);
      continue;
    }
    std::string none = "not __fish_seen_subcommand_from";
    for (const CLI::App* c : subs)
      for (const auto& n : Names(c))
        none += " " + n;
    for (const CLI::App* c : subs) {
      for (const auto& n : Names(c))
        f << "complete -c kiln -n " << FishQuote(seen + "; and " + none) << " -a " << n << " -d "
          << FishQuote(c->get_description()) << "\n";
      std::string seen_c = "__fish_seen_subcommand_from";
      for (const auto& n : Names(c))
        seen_c += " " + n;
      flag_lines(c, seen + "; and " + seen_c);
    }
  }
  return f.str();
}

int WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush())
    return ReportError(Error(Errc::kFailed, "write " + path + ": " + std::strerror(errno)));
  return 0;
}

}  // namespace

void AddDocsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("__docs", "");
  cmd->group("");
  auto kind = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  cmd->add_option("kind", *kind, "man|bash|zsh|fish|commands")->required();
  cmd->add_option("dir", *dir, "output directory (man)");
  const CLI::App* root = &app;
  SetAction(cmd, ctx, [root, kind, dir] {
    if (*kind == "bash")
      std::cout << Bash(root);
    else if (*kind == "zsh")
      std::cout << Zsh(root);
    else if (*kind == "fish")
      std::cout << Fish(root);
    else if (*kind == "commands") {
      // One line per command: its path and usage (the CI check of docs/cli.md).
      for (const auto& n : Walk(root))
        std::cout << n.path << "\t" << CommandUsage(n.app) << "\n";
    } else if (*kind == "man") {
      if (dir->empty())
        return ReportError(Error(Errc::kInvalidInput, "__docs man: needs an output directory"));
      ::mkdir(dir->c_str(), 0755);
      if (int rc = WriteFile(*dir + "/kiln.1", ManPage(root, "")); rc != 0)
        return rc;
      for (const auto& n : Walk(root))
        if (int rc = WriteFile(*dir + "/" + Dashed(n.path) + ".1", ManPage(n.app, n.path)); rc != 0)
          return rc;
    } else {
      return ReportError(Error(Errc::kInvalidInput, "__docs: unknown kind " + *kind + " (man|bash|zsh|fish|commands)"));
    }
    return 0;
  });
}

}  // namespace kiln::cli
