//! The Perl-compatible value model, expression evaluation, maps and type checks.
