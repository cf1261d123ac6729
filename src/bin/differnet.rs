//! `differnet`: the headless front end (see [`differnet::cli`]).

fn main() {
    differnet::cli::main();
}
