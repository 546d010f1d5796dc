fn main() {
    println!("ramboot");
}
