fn main() {
    println!("smart-fhir: being built");
}
